"""`import_customers FILE.csv --tenant T --environment E`: all rows or none (customers.importer)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from customers.importer import CustomerImportError, ImportProgress, import_customers_csv
from customers.management.progress import TerminalLine


class TerminalProgress(TerminalLine):
    """`reading 40,000 rows (52,000 rows/s)`, then `writing 12,000/40,000 rows (...)`."""

    def __call__(self, progress: ImportProgress) -> None:
        rate = progress.done / progress.seconds if progress.seconds > 0 else 0.0
        counted = f"{progress.done:,}"
        if progress.total is not None:  # unknown until the whole file has been read
            counted += f"/{progress.total:,}"
        self.draw(f"{progress.phase} {counted} rows ({rate:,.0f} rows/s)")


class Command(BaseCommand):
    help = (
        "Import customers from a UTF-8 CSV file whose header uses the API's field names into"
        " an existing tenant and environment. The first bad row aborts; nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the CSV file")
        parser.add_argument("--tenant", required=True, help="an existing tenant id")
        parser.add_argument("--environment", required=True, help="an environment of the tenant")

    def handle(self, *args, file: Path, tenant: str, environment: str, **options):
        progress = TerminalProgress(output=self.stderr) if self.stderr.isatty() else None
        try:
            result = import_customers_csv(
                path=file, tenant_id=tenant, environment_id=environment, on_progress=progress
            )
        except CustomerImportError as error:
            raise CommandError(str(error)) from None
        finally:
            if progress is not None:
                progress.finish()
        self.stdout.write(
            f"Imported {result.imported} customers into {result.scope}"
            f" in {result.seconds:.2f}s ({result.rows_per_second:.0f} rows/s)"
        )
