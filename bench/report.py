"""The Markdown page (docs/benchmarks.md) from the measurements."""

import os
from datetime import UTC, datetime

from bench.common import BENCH_TENANT
from bench.data import ScopePlan, SeedReport
from bench.measure import (
    APP,
    FRAMEWORK_FLOOR,
    ROUND_SAMPLES,
    SQL_FLOOR,
    Export,
    Result,
    Throughput,
    Writes,
)
from bench.server import Server
from bench.system import machine, versions

SEED_TARGET_SECONDS = 60  # for 1,000,000 customers
IMPORT_TARGET_ROWS = 50_000  # rows/s
FRAMEWORK_GOAL = 2.0  # the app's p50 over the framework floor's, for the API's lists


def milliseconds(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def p50_of(result: Result, variant: str) -> str:
    timing = result.timings.get(variant)
    return "—" if timing is None else milliseconds(timing.p50)


def ratio_of(result: Result, numerator: str, denominator: str) -> str:
    ratio = result.ratio(numerator, denominator)
    return "—" if ratio is None else f"{ratio:.1f}x"


def console_line(result: Result) -> str:
    return (
        f"  {result.query.name:<52} p50 {result.app.p50:7.1f} ms  p95 {result.app.p95:7.1f} ms"
        f"  SQL floor {p50_of(result, SQL_FLOOR):>8} ({ratio_of(result, APP, SQL_FLOOR):>6})"
        f"  framework floor {p50_of(result, FRAMEWORK_FLOOR):>8}"
        f" ({ratio_of(result, APP, FRAMEWORK_FLOOR):>6})"
    )


def report(
    *,
    command: str,
    plan: list[ScopePlan],
    seeding: SeedReport,
    server: Server,
    results: list[Result],
    throughput: Throughput | None,
    throughput_target: float,
    export: Export | None,
    writes: Writes | None,
    database_url: str,
    warmup: int,
    samples: int,
    search_count_limit: int,
) -> str:
    total = sum(scope.count for scope in plan)
    main = plan[0]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; run it again to"
        " refresh this page (bench/run.py says what it does).",
        "",
        f"- **Machine**: {machine()}.",
        f"- **Versions**: {versions(database_url)}.",
        f"- **Data**: {total:,} customers: {main.count:,} in `{main.tenant}/{main.environment}`"
        " (the API key's scope), "
        + ", ".join(f"{s.count:,} in `{s.tenant}/{s.environment}`" for s in plan[1:])
        + f". The admin's operator belongs to `{BENCH_TENANT}` ("
        f"{sum(s.count for s in plan if s.tenant == BENCH_TENANT):,} customers in two"
        " environments); the admin list opens on the operator's current environment,"
        f" `{main.environment}`, as the admin queries below do.",
    ]
    if seeding.seeded:
        seeded = "; ".join(
            f"{scope.count:,} into `{scope.tenant}/{scope.environment}` in {seconds:.1f}s"
            for scope, seconds, _ in seeding.seeded
        )
        lines.append(
            f"- **Seeding** (`manage.py seed_customers`, this run): {seeded};"
            f" then `VACUUM ANALYZE` in {seeding.vacuum_seconds:.1f}s."
        )
    else:
        lines.append(
            "- **Seeding**: the database already held the data (seeded by an earlier run)."
        )
    workers = server.expected_workers()
    lines += [
        f"- **Server**: `gunicorn {' '.join(server.command[1:])}`"
        f" ({workers} gthread workers x {server.environment.get('GUNICORN_THREADS', '4')}"
        " threads), `crm.settings.production`, "
        + (
            f"a pool of up to {pool} database connections per process"
            f" (`DJANGO_DB_POOL_SIZE={pool}`)"
            if (pool := int(server.environment.get("DJANGO_DB_POOL_SIZE", "0")))
            else "persistent database connections (`DJANGO_CONN_MAX_AGE=600`)"
        )
        + ", PostgreSQL and the client on the same machine, all over 127.0.0.1.",
        f"- **Method**: per query, {warmup} warm-up requests then {samples} samples over a"
        " keep-alive connection (one for the API, one for the admin), timed from sending the"
        " request to the last byte of the body."
        f" The queries take turns, {ROUND_SAMPLES} requests at a time from each server (then"
        f" {ROUND_SAMPLES} runs of the SQL floor), the servers' order rotating from round to"
        " round, so that a slow phase of the machine falls on all of them alike.",
        "- *SQL floor*: the same query as raw SQL through psycopg on one connection: the page"
        " (the contract's 17 columns, the parent's when expanded or shown) and, when the page"
        " does not show where the list ends, the total (the per-status counts for an"
        " unfiltered list, else `COUNT(*)`; for the admin's search, a count of up to"
        f' {search_count_limit:,} matches, as the admin shows more as "{search_count_limit}+").',
        "- *Framework floor* (API queries): a bare Django + DRF project (bench/framework: a new"
        " project's middleware, DEBUG off, no database) served by the same gunicorn settings"
        " (`gunicorn bench.framework.wsgi -c gunicorn.conf.py`), answering from memory the very"
        " bytes the app answered for that query string, through DRF's APIView (content"
        " negotiation, a Bearer key's shape checked and its SHA-256 compared, the permission)"
        " and a Response rendered by DRF's renderer path. What the app takes beyond it is the"
        " cost of its own code and its queries.",
        "- *÷ SQL*, *÷ framework*: the app's p50 over that floor's p50.",
        "",
        "| query | p50 | p95 | SQL floor p50 | ÷ SQL | framework floor p50 | ÷ framework"
        " | target (p50) | met? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for result in results:
        target = "—" if result.query.target_ms is None else f"≤ {result.query.target_ms:g} ms"
        met = {None: "—", True: "yes", False: "**no**"}[result.met]
        lines.append(
            f"| {result.query.name} | {milliseconds(result.app.p50)}"
            f" | {milliseconds(result.app.p95)} | {p50_of(result, SQL_FLOOR)}"
            f" | {ratio_of(result, APP, SQL_FLOOR)} | {p50_of(result, FRAMEWORK_FLOOR)}"
            f" | {ratio_of(result, APP, FRAMEWORK_FLOOR)} | {target} | {met} |"
        )
    framed = [r for r in results if r.ratio(APP, FRAMEWORK_FLOOR) is not None]
    if framed:
        within = [r for r in framed if r.ratio(APP, FRAMEWORK_FLOOR) <= FRAMEWORK_GOAL]
        lines += [
            "",
            f"Against the framework floor (the goal is {FRAMEWORK_GOAL:g}x): "
            + ", ".join(f"{r.query.name} {ratio_of(r, APP, FRAMEWORK_FLOOR)}" for r in framed)
            + f"; {len(within)} of {len(framed)} API queries within the goal.",
        ]
    lines.append("")
    if throughput is not None:
        met = "yes" if throughput.per_second >= throughput_target else "**no**"
        lines.append(
            f"**Throughput**, default list, {throughput.connections} concurrent keep-alive"
            f" connections for {throughput.seconds:.1f}s: **{throughput.per_second:.0f} req/s**"
            f" (target ≥ {throughput_target:g}: {met}); p50 latency under that load"
            f" {milliseconds(throughput.p50)}; {throughput.errors} errors. gunicorn's processes"
            f" used {throughput.server_cpu_ms_per_request:.1f} ms of CPU per request; the"
            f" client's threads {throughput.client_cpu_seconds / throughput.seconds:.0%} of a"
            " core (they share the machine's cores with the server and PostgreSQL)."
        )
        lines.append("")
    if export is not None:
        lines.append(
            f"**CSV export** of `{main.tenant}/{main.environment}` (admin export, streamed):"
            f" {export.rows:,} rows, {export.megabytes:.0f} MB in {export.seconds:.1f}s"
            f" ({export.rows_per_second:,.0f} rows/s); the serving worker's RSS went from"
            f" {export.baseline_rss_mib:.0f} MiB to a peak of {export.peak_rss_mib:.0f} MiB"
            f" (VmRSS sampled every 50 ms; VmHWM afterwards {export.hwm_mib:.0f} MiB)."
        )
        lines.append("")
    if writes is not None:
        seed_met = "—"  # the target is for a million rows
        if writes.seed_rows == 1_000_000:
            seed_met = "yes" if writes.seed_seconds < SEED_TARGET_SECONDS else "**no**"
        import_met = "yes" if writes.import_rows_per_second >= IMPORT_TARGET_ROWS else "**no**"
        lines += [
            "**Bulk writes**, into new scopes of the same table (its indexes already hold the"
            f" {total:,} customers above), with the server stopped; the scopes are deleted"
            f" afterwards ({writes.cleanup_seconds:.0f}s):",
            "",
            "| command | rows | seconds | rows/s | target | met? |",
            "|---|---:|---:|---:|---:|:---:|",
            f"| `seed_customers --count {writes.seed_rows}` | {writes.seed_rows:,}"
            f" | {writes.seed_seconds:.1f} | {writes.seed_rows_per_second:,.0f}"
            f" | < {SEED_TARGET_SECONDS} s for 1,000,000 | {seed_met} |",
            f"| `import_customers` ({writes.import_rows:,}-row file from"
            f" `seed_customers --csv`) | {writes.import_rows:,} | {writes.import_seconds:.1f}"
            f" | {writes.import_rows_per_second:,.0f} | ≥ {IMPORT_TARGET_ROWS:,} rows/s"
            f" | {import_met} |",
            "",
            f"The import recorded {writes.import_events:,} events (a `customer.created` per"
            " row, COPYed in the import's transaction); its time includes them."
            f" Where the import's time goes: the command used {writes.import_cpu_seconds:.1f}s"
            " of CPU itself (starting Django, reading and checking the file, sending rows),"
            + (
                f" PostgreSQL {writes.import_postgres_cpu_seconds:.1f}s"
                f" ({writes.import_postgres_cpu_seconds * 1e6 / writes.import_rows:.0f} µs a"
                " row: at 50,000 rows/s that alone would take"
                f" {writes.import_postgres_cpu_seconds / writes.import_rows * 50_000:.1f} cores"
                f" of the machine's {os.cpu_count()}),"
                if writes.import_postgres_cpu_seconds is not None
                else ""
            )
            + " and the same file COPYed into a table without indexes takes"
            f" {writes.unindexed_copy_seconds:.2f}s: the time is PostgreSQL maintaining the"
            " table's ten indexes (primary key, live external id, parent, six scope sort"
            " indexes and the trigram index, the most expensive), which the reading overlaps"
            " (rows stream into one COPY as they are checked)."
            " Seeding spreads the same work over one connection per core; an import stays one"
            " transaction, all or nothing. docs/scaling.md says how to load large tenants"
            " faster.",
            "",
        ]
    return "\n".join(lines)
