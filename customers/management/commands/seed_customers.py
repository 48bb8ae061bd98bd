"""`seed_customers --count N --tenant T --environment E [--seed S]`: realistic customers, fast.

The rows come from ``customers.seeding`` (deterministic: the same arguments give the same
customers, ids included); the tenant and environment are created if missing.
"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from customers.management.progress import TerminalLine
from customers.scope import Scope
from customers.seeding import SeedError, seed_customers, write_seed_csv
from customers.services import ServiceError

BAR_WIDTH = 30
REDRAW_EVERY_SECONDS = 0.1


class ProgressBar(TerminalLine):
    """``[#####-----] 45% 450,000/1,000,000 rows, 52,000 rows/s, 10s left``, redrawn in place."""

    def __init__(self, *, output: OutputWrapper):
        super().__init__(output=output)
        self.started = time.perf_counter()
        self.drawn_at = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.drawn_at < REDRAW_EVERY_SECONDS:
            return
        self.drawn_at = now
        fraction = done / total if total else 1.0
        filled = int(BAR_WIDTH * fraction)
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        if done < total:
            left = f", {(total - done) / rate:.0f}s left" if rate else ""
        else:
            left = ", committing"  # the deferred foreign keys are checked at commit
        self.draw(
            f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction:4.0%}"
            f" {done:,}/{total:,} rows, {rate:,.0f} rows/s{left}"
        )


class Command(BaseCommand):
    help = (
        "Insert COUNT realistic customers (companies, people, ~10% branches of earlier"
        " companies) into a tenant's environment, created if missing. The same --seed, tenant"
        " and environment always give the same customers, ids included."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True, help="how many customers")
        parser.add_argument("--tenant", required=True, help="tenant id (created if missing)")
        parser.add_argument(
            "--environment", required=True, help="environment id (created if missing)"
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument(
            "--writers",
            type=int,
            default=None,
            help="PostgreSQL connections writing at once (default: one per CPU core)",
        )
        parser.add_argument(
            "--csv",
            type=Path,
            metavar="FILE",
            help="write the customers to FILE as a CSV that import_customers reads (into the"
            " same tenant and environment) instead of inserting them",
        )

    def handle(self, *args, count: int, tenant: str, environment: str, seed: int, **options):
        if count < 0:
            raise CommandError("--count must not be negative")
        if options["writers"] is not None and options["writers"] < 1:
            raise CommandError("--writers must be at least 1")
        if options["csv"] is not None:
            self.write_csv(
                options["csv"], count=count, tenant=tenant, environment=environment, seed=seed
            )
            return
        progress = ProgressBar(output=self.stderr) if self.stderr.isatty() else None
        try:
            result = seed_customers(
                tenant_id=tenant,
                environment_id=environment,
                count=count,
                seed=seed,
                on_progress=progress,
                writers=options["writers"],
            )
        except (SeedError, ServiceError, ValueError) as error:
            raise CommandError(str(error)) from None
        finally:
            if progress is not None:
                progress.finish()
        statuses = ", ".join(f"{status} {n:,}" for status, n in sorted(result.statuses.items()))
        analyzed = f"; analyzed in {result.analyze_seconds:.1f}s" if result.analyze_seconds else ""
        self.stdout.write(
            f"Seeded {result.seeded:,} customers into {result.scope} (seed {seed})"
            f" in {result.seconds:.1f}s ({result.rows_per_second:,.0f} rows/s){analyzed}:"
            f" {statuses or 'none'}; {result.with_parent:,} with a parent"
        )

    def write_csv(
        self, path: Path, *, count: int, tenant: str, environment: str, seed: int
    ) -> None:
        started = time.perf_counter()
        try:
            written = write_seed_csv(
                path=path,
                scope=Scope(tenant_id=tenant, environment_id=environment),
                count=count,
                seed=seed,
            )
        except OSError as error:
            raise CommandError(f"cannot write {str(path)!r}: {error.strerror}") from None
        self.stdout.write(
            f"Wrote {written:,} customers for {tenant}/{environment} (seed {seed}) to"
            f" {path} in {time.perf_counter() - started:.1f}s"
        )
