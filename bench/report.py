"""The Markdown page (docs/benchmarks.md) from the measurements."""

import os
from datetime import UTC, datetime

from bench.common import BENCH_TENANT
from bench.data import ScopePlan, SeedReport
from bench.eventlog import EVENTS_OFF, EVENTS_ON
from bench.measure import (
    APP,
    BEFORE,
    FRAMEWORK_FLOOR,
    ROUND_SAMPLES,
    SQL_FLOOR,
    Export,
    Measurements,
    Result,
    Throughput,
    Writes,
)
from bench.queries import CURSOR_GOAL, FIRST_PAGE
from bench.server import Server
from bench.system import machine, versions

SEED_TARGET_SECONDS = 60  # for 1,000,000 customers
IMPORT_TARGET_ROWS = 50_000  # rows/s
FRAMEWORK_GOAL = 2.0  # the app's p50 over the framework floor's, for the API's lists
SLOWER_FLAG = 0.10  # a query whose p50 grew by more than this is flagged
# A section of the page from this heading on is written by hand: a new run keeps it.
KEPT_HEADING = "## Findings"


def milliseconds(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def p50_of(result: Result, variant: str) -> str:
    timing = result.timings.get(variant)
    return "—" if timing is None else milliseconds(timing.p50)


def ratio_of(result: Result, numerator: str, denominator: str) -> str:
    ratio = result.ratio(numerator, denominator)
    return "—" if ratio is None else f"{ratio:.1f}x"


def change(before: float, after: float) -> str:
    return f"{(after - before) / before:+.0%}" if before else "—"


def console_line(result: Result) -> str:
    before = ""
    if BEFORE in result.timings:
        before = (
            f"  before {p50_of(result, BEFORE):>8}"
            f" ({change(result.timings[BEFORE].p50, result.app.p50)})"
        )
    return (
        f"  {result.query.name:<52} p50 {result.app.p50:7.1f} ms  p95 {result.app.p95:7.1f} ms"
        f"  SQL floor {p50_of(result, SQL_FLOOR):>8} ({ratio_of(result, APP, SQL_FLOOR):>6})"
        f"  framework floor {p50_of(result, FRAMEWORK_FLOOR):>8}"
        f" ({ratio_of(result, APP, FRAMEWORK_FLOOR):>6}){before}"
    )


def slower(result: Result) -> bool:
    if BEFORE not in result.timings:
        return False
    return result.app.p50 > result.timings[BEFORE].p50 * (1 + SLOWER_FLAG)


def report(
    run: Measurements,
    *,
    command: str,
    plan: list[ScopePlan],
    seeding: SeedReport,
    server: Server,
    throughput_target: float,
    database_url: str,
    warmup: int,
    samples: int,
    search_count_limit: int,
    kept: str = "",
) -> str:
    """The page; ``kept``, the page as it was, gives the hand-written section to keep."""
    compared = BEFORE in run.checkouts
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; run it again to"
        " refresh this page (bench/run.py says what it does; a section headed"
        f' "{KEPT_HEADING[3:]}", written by hand, is kept as it is).',
        "",
        *setup_lines(
            run,
            plan=plan,
            seeding=seeding,
            server=server,
            database_url=database_url,
            warmup=warmup,
            samples=samples,
            search_count_limit=search_count_limit,
        ),
        "",
        *latency_lines(run),
    ]
    if compared:
        lines += before_after_lines(run)
    if run.throughput:
        lines += throughput_lines(run.throughput, target=throughput_target)
    if run.export:
        lines += export_lines(run.export, plan=plan)
    if run.writes:
        lines += writes_lines(run.writes, total=sum(scope.count for scope in plan))
    lines += find_lines(run)
    if run.export and run.copy_floor is not None:
        lines += api_export_lines(run, plan=plan)
    if APP in run.writes and run.writes[APP].indexed_copy_seconds:
        lines += import_floor_lines(run.writes[APP], total=sum(scope.count for scope in plan))
    if run.http_writes is not None or run.import_events is not None or run.webhooks:
        lines += event_log_lines(run)
    loads = {**run.loads}
    for label, writes in run.writes.items():
        loads.update({f"{step} ({label})": load for step, load in writes.loads.items()})
    if loads:
        lines += [
            "**Load averages** (1, 5 and 15 minutes; 2 cores, shared with other work) at the"
            " start and the end of each measurement: "
            + "; ".join(f"{name}: {load}" for name, load in loads.items())
            + ".",
            "",
        ]
    if KEPT_HEADING in kept:
        lines.append(kept[kept.index(KEPT_HEADING) :].rstrip())
        lines.append("")
    return "\n".join(lines)


def setup_lines(
    run: Measurements,
    *,
    plan: list[ScopePlan],
    seeding: SeedReport,
    server: Server,
    database_url: str,
    warmup: int,
    samples: int,
    search_count_limit: int,
) -> list[str]:
    total = sum(scope.count for scope in plan)
    main = plan[0]
    compared = BEFORE in run.checkouts
    lines = [
        f"- **Machine**: {machine()}.",
        f"- **Versions**: {versions(database_url)}.",
    ]
    if compared:
        lines.append(
            f"- **Code**: *after* is this checkout, {run.checkouts[APP]}; *before* is"
            f" {run.checkouts[BEFORE]}, served from its own checkout (a git worktree) by the"
            " same command, against the same database, at the same time."
        )
    else:
        lines.append(f"- **Code**: {run.checkouts[APP]}.")
    lines.append(
        f"- **Data**: {total:,} customers: {main.count:,} in `{main.tenant}/{main.environment}`"
        " (the API key's scope), "
        + ", ".join(f"{s.count:,} in `{s.tenant}/{s.environment}`" for s in plan[1:])
        + f". The admin's operator belongs to `{BENCH_TENANT}` ("
        f"{sum(s.count for s in plan if s.tenant == BENCH_TENANT):,} customers in two"
        " environments); the admin list opens on the operator's current environment,"
        f" `{main.environment}`, as the admin queries below do."
        + (
            " The database is migrated by the *after* code; the *before* code ignores the"
            " tables it does not know (the event log)."
            if compared
            else ""
        )
    )
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
    pool = int(server.environment.get("DJANGO_DB_POOL_SIZE", "0"))
    lines += [
        f"- **Server**: `gunicorn {' '.join(server.command[1:])}`"
        f" ({server.expected_workers()} gthread workers x {server.threads()} threads),"
        " `crm.settings.production`, "
        + (
            f"a pool of up to {pool} database connections per process"
            f" (`DJANGO_DB_POOL_SIZE={pool}`)"
            if pool
            else "persistent database connections (`DJANGO_CONN_MAX_AGE=600`)"
        )
        + ", PostgreSQL and the client on the same machine, all over 127.0.0.1."
        + (" Each checkout's server runs so, on a port of its own." if compared else ""),
        f"- **Method**: per query, {warmup} warm-up requests then {samples} samples over a"
        " keep-alive connection (one for the API, one for the admin, per server), timed from"
        " sending the request to the last byte of the body."
        f" The queries take turns, {ROUND_SAMPLES} requests at a time from each server"
        + (" (after, before, the framework floor)" if compared else "")
        + f" and {ROUND_SAMPLES} runs of the SQL floor, their order rotating from round to"
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
    ]
    if run.load is not None:
        load = run.load
        lines.append(
            f"- **Noise**: while the queries were timed ({load.seconds:.0f}s), processes other"
            " than the servers, the benchmark and its PostgreSQL backends used"
            f" {load.others_cores:.0%} of a core on average (of {os.cpu_count()}); load"
            f" average {load.load_average_before} before, {load.load_average_after} after."
        )
    return lines


def latency_lines(run: Measurements) -> list[str]:
    lines = [
        "| query | p50 | p95 | SQL floor p50 | ÷ SQL | framework floor p50 | ÷ framework"
        " | target (p50) | met? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for result in run.results:
        target = "—" if result.query.target_ms is None else f"≤ {result.query.target_ms:g} ms"
        met = {None: "—", True: "yes", False: "**no**"}[result.met]
        lines.append(
            f"| {result.query.name} | {milliseconds(result.app.p50)}"
            f" | {milliseconds(result.app.p95)} | {p50_of(result, SQL_FLOOR)}"
            f" | {ratio_of(result, APP, SQL_FLOOR)} | {p50_of(result, FRAMEWORK_FLOOR)}"
            f" | {ratio_of(result, APP, FRAMEWORK_FLOOR)} | {target} | {met} |"
        )
    framed = [r for r in run.results if r.ratio(APP, FRAMEWORK_FLOOR) is not None]
    if framed:
        within = [r for r in framed if r.ratio(APP, FRAMEWORK_FLOOR) <= FRAMEWORK_GOAL]
        lines += [
            "",
            f"**Against the framework floor** (the goal is {FRAMEWORK_GOAL:g}x): "
            + ", ".join(f"{r.query.name} {ratio_of(r, APP, FRAMEWORK_FLOOR)}" for r in framed)
            + f"; {len(within)} of {len(framed)} API queries within the goal."
            + (
                " Before: "
                + ", ".join(
                    f"{r.query.name} {ratio_of(r, BEFORE, FRAMEWORK_FLOOR)}" for r in framed
                )
                + "."
                if BEFORE in run.checkouts
                else ""
            ),
        ]
    lines.append("")
    return lines


def before_after_lines(run: Measurements) -> list[str]:
    lines = [
        "## Before and after",
        "",
        f"*Before*: {run.checkouts[BEFORE]}; *after*: {run.checkouts[APP]}. The two servers"
        " took turns within every round; *rounds slower* counts the rounds in which after's"
        " median was above before's (a machine's slow phase falls on both within a round)."
        f" A query more than {SLOWER_FLAG:.0%} slower at p50 is flagged.",
        "",
        "| query | before p50 | after p50 | difference | before p95 | after p95"
        " | rounds slower | |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for result in run.results:
        if BEFORE not in result.timings:
            continue
        before = result.timings[BEFORE]
        rounds = result.rounds_slower()
        lines.append(
            f"| {result.query.name} | {milliseconds(before.p50)} | {milliseconds(result.app.p50)}"
            f" | {change(before.p50, result.app.p50)} | {milliseconds(before.p95)}"
            f" | {milliseconds(result.app.p95)} | {rounds[0]} of {rounds[1]}"
            f" | {'**slower**' if slower(result) else ''} |"
        )
    flagged = [result.query.name for result in run.results if slower(result)]
    lines.append("")
    lines.append(
        f"More than {SLOWER_FLAG:.0%} slower: " + (", ".join(flagged) if flagged else "none") + "."
    )
    if run.same_bodies:
        differing = [name for name, same in run.same_bodies.items() if not same]
        lines.append(
            "The two answered the same bytes to every API query."
            if not differing
            else "Their API bodies differ for: " + ", ".join(differing) + "."
        )
    lines.append("")
    return lines


def throughput_lines(throughputs: dict[str, Throughput], *, target: float) -> list[str]:
    app = throughputs[APP]
    met = "yes" if app.per_second >= target else "**no**"
    runs = f" ({app.runs} runs, taking turns with before's)" if BEFORE in throughputs else ""
    text = (
        f"**Throughput**, default list, {app.connections} concurrent keep-alive"
        f" connections for {app.seconds:.1f}s{runs}: **{app.per_second:.0f} req/s**"
        f" (target ≥ {target:g}: {met}); p50 latency under that load"
        f" {milliseconds(app.p50)}; {app.errors} errors. gunicorn's processes"
        f" used {app.server_cpu_ms_per_request:.1f} ms of CPU per request; the"
        f" client's threads {app.client_cpu_seconds / app.seconds:.0%} of a"
        " core (they share the machine's cores with the server and PostgreSQL)."
    )
    before = throughputs.get(BEFORE)
    if before is not None:
        text += (
            f" Before: {before.per_second:.0f} req/s ({change(before.per_second, app.per_second)}"
            f" after), p50 {milliseconds(before.p50)}, {before.errors} errors,"
            f" {before.server_cpu_ms_per_request:.1f} ms of server CPU per request"
            f" ({change(before.server_cpu_ms_per_request, app.server_cpu_ms_per_request)} after)."
        )
    return [text, ""]


def export_lines(exports: dict[str, Export], *, plan: list[ScopePlan]) -> list[str]:
    main = plan[0]
    export = exports.get(APP)
    if export is None:
        return []
    text = (
        f"**CSV export** of `{main.tenant}/{main.environment}` (admin export, streamed):"
        f" {export.rows:,} rows, {export.megabytes:.0f} MB in {export.seconds:.1f}s"
        f" ({export.rows_per_second:,.0f} rows/s); the serving worker's RSS went from"
        f" {export.baseline_rss_mib:.0f} MiB to a peak of {export.peak_rss_mib:.0f} MiB"
        f" (VmRSS sampled every 50 ms; VmHWM afterwards {export.hwm_mib:.0f} MiB)."
    )
    before = exports.get(BEFORE)
    if before is not None:
        text += (
            f" Before: {before.megabytes:.0f} MB in {before.seconds:.1f}s"
            f" ({before.rows_per_second:,.0f} rows/s), RSS {before.baseline_rss_mib:.0f} MiB"
            f" to {before.peak_rss_mib:.0f} MiB."
        )
    return [text, ""]


def writes_lines(all_writes: dict[str, Writes], *, total: int) -> list[str]:
    writes = all_writes[APP]
    before = all_writes.get(BEFORE)
    seed_met = "—"  # the target is for a million rows
    if writes.seed_rows == 1_000_000:
        seed_met = "yes" if writes.seed_seconds < SEED_TARGET_SECONDS else "**no**"
    import_met = "yes" if writes.import_rows_per_second >= IMPORT_TARGET_ROWS else "**no**"
    if before is None:
        header = [
            "| command | rows | seconds | rows/s | target | met? |",
            "|---|---:|---:|---:|---:|:---:|",
        ]
        seed_before = import_before = ""
    else:
        header = [
            "| command | rows | seconds | rows/s | before: seconds | before: rows/s | target"
            " | met? |",
            "|---|---:|---:|---:|---:|---:|---:|:---:|",
        ]
        seed_before = f" | {before.seed_seconds:.1f} | {before.seed_rows_per_second:,.0f}"
        import_before = f" | {before.import_seconds:.1f} | {before.import_rows_per_second:,.0f}"
    lines = [
        "**Bulk writes**, into new scopes of the same table (its indexes already hold the"
        f" {total:,} customers above), with the servers stopped; the scopes are deleted"
        f" afterwards ({writes.cleanup_seconds:.0f}s)"
        + (
            "; *before*: the same commands of the before checkout, the same import file,"
            " after the after's, into the same table (the after's migrations made it: both"
            " maintain its indexes, so a difference is the code's)"
            if before
            else ""
        )
        + ":",
        "",
        *header,
        f"| `seed_customers --count {writes.seed_rows}` | {writes.seed_rows:,}"
        f" | {writes.seed_seconds:.1f} | {writes.seed_rows_per_second:,.0f}{seed_before}"
        f" | < {SEED_TARGET_SECONDS} s for 1,000,000 | {seed_met} |",
        f"| `import_customers` ({writes.import_rows:,}-row realistic file,"
        f" bench/importfile.py) | {writes.import_rows:,} | {writes.import_seconds:.1f}"
        f" | {writes.import_rows_per_second:,.0f}{import_before} | ≥ {IMPORT_TARGET_ROWS:,}"
        f" rows/s | {import_met} |",
        "",
    ]
    events = (
        f"The import's time includes the {writes.import_events:,} events it recorded (a"
        " `customer.created` per row, written by COPY in the import's transaction)"
        + (
            f"; PostgreSQL writes those events in {writes.events_copy_seconds:.2f}s (the same"
            f" rows COPYed again into a new table like theirs: its {len(writes.event_indexes)}"
            f" indexes, its {writes.event_foreign_keys} foreign keys checked; rolled back)"
            if writes.events_copy_seconds is not None
            else ""
        )
        + (
            f". The before code records none ({before.import_events:,} events): the import"
            f" takes {writes.import_seconds - before.import_seconds:+.1f}s"
            f" ({change(before.import_seconds, writes.import_seconds)}) against before's."
            if before is not None
            else "."
        )
    )
    where = (
        f"Where the import's time goes: the command used {writes.import_cpu_seconds:.1f}s"
        " of CPU itself (starting Django, reading and checking the file, making the events,"
        " sending rows),"
        + (
            f" PostgreSQL {writes.import_postgres_cpu_seconds:.1f}s"
            f" ({writes.import_postgres_cpu_seconds * 1e6 / writes.import_rows:.0f} µs a"
            " row: at 50,000 rows/s that alone would take"
            f" {writes.import_postgres_cpu_seconds / writes.import_rows * 50_000:.1f} cores"
            f" of the machine's {os.cpu_count()}),"
            if writes.import_postgres_cpu_seconds is not None
            else ""
        )
        + (
            " and the same file COPYed into a table without indexes takes"
            f" {writes.unindexed_copy_seconds:.2f}s: the rest of PostgreSQL's time is its"
            " work on the real tables (the customer table's"
            f" {len(writes.customer_indexes)} indexes:"
            f" {', '.join(f'`{name}`' for name in writes.customer_indexes)}; the events) and"
            " the import's own queries, which the reading overlaps (rows stream into COPY as"
            " they are checked)."
            if writes.unindexed_copy_seconds is not None
            else ""
        )
        + " Seeding spreads the same work over one connection per core; an import stays one"
        " transaction, all or nothing. docs/scaling.md says how to load large tenants faster."
    )
    return [*lines, events, "", where, ""]


def met_text(value: bool | None) -> str:
    return {None: "—", True: "yes", False: "**no**"}[value]


# -- Issue "Find and sync customers": q, ranges, metadata, cursors, export, import --------------

EXPORT_GOAL = 0.5  # the export's rows/s over PostgreSQL's COPY of the same rows
IMPORT_FLOOR_GOAL = 0.8  # the import's rows/s over a plain COPY of its rows into the table
IMPORT_RSS_GOAL_MB = 300


def find_lines(run: Measurements) -> list[str]:
    found = [r for r in run.results if r.query.floor_goal is not None]
    by_name = {r.query.name: r for r in run.results}
    cursor = next((r for r in run.results if r.query.name.startswith("cursor page")), None)
    if not found and cursor is None:
        return []
    lines = [
        "## Finding and syncing",
        "",
        'From the table above, the list parameters of the issue "Find and sync customers"'
        " (the before checkout has none of them): each p50 beside its SQL floor, the same"
        " page and its exact total (`COUNT(*)`, when the page does not show it) through"
        " psycopg. Goals: within 3x of the floor, and at most 10 ms for the rare word, the"
        " range and the metadata filter.",
        "",
        "| query | p50 | p95 | SQL floor p50 | ÷ SQL | within 3x? | ≤ 10 ms? |",
        "|---|---:|---:|---:|---:|:---:|:---:|",
    ]
    for result in found:
        ratio = result.ratio(APP, SQL_FLOOR)
        lines.append(
            f"| {result.query.name} | {milliseconds(result.app.p50)}"
            f" | {milliseconds(result.app.p95)} | {p50_of(result, SQL_FLOOR)}"
            f" | {ratio_of(result, APP, SQL_FLOOR)}"
            f" | {met_text(None if ratio is None else ratio <= result.query.floor_goal)}"
            f" | {met_text(result.met)} |"
        )
    lines.append("")
    first = by_name.get(FIRST_PAGE)
    offset = next((r for r in run.results if r.query.name.startswith("offset=")), None)
    if cursor is not None and first is not None:
        ratio = cursor.app.p50 / first.app.p50
        lines += [
            f"**{cursor.query.name.capitalize()}** (the cursor of the page that ends there,"
            " taken from the app once, untimed): p50"
            f" {milliseconds(cursor.app.p50)}, p95 {milliseconds(cursor.app.p95)}, against the"
            f" first page's {milliseconds(first.app.p50)}: **{ratio:.2f}x** (goal ≤"
            f" {CURSOR_GOAL:g}x: {met_text(ratio <= CURSOR_GOAL)}); its SQL floor (the keyset"
            f" page and the total) {p50_of(cursor, SQL_FLOOR)}."
            + (
                f" The offset page at the same depth (`{offset.query.name}`):"
                f" {milliseconds(offset.app.p50)} ({offset.app.p50 / cursor.app.p50:.1f}x the"
                " cursor page)."
                if offset is not None
                else ""
            ),
            "",
        ]
    return lines


def api_export_lines(run: Measurements, *, plan: list[ScopePlan]) -> list[str]:
    main = plan[0]
    floor = run.copy_floor
    lines = [
        f"**Exports of `{main.tenant}/{main.environment}`** ({floor.rows:,} customers),"
        " streamed over HTTP and read to the last byte, beside PostgreSQL's own `COPY"
        " (SELECT <the contract's 17 columns> ... ORDER BY created_at DESC, id DESC) TO STDOUT"
        f" (FORMAT csv)` of the same rows read by psycopg: {floor.megabytes:.0f} MB in"
        f" {floor.seconds:.1f}s, **{floor.rows_per_second:,.0f} rows/s**. Goal for the API's"
        f" export: at least {EXPORT_GOAL:.0%} of that. RSS: the serving worker's, sampled"
        " every 50 ms.",
        "",
        "| export | MB | seconds | rows/s | ÷ COPY | goal ≥ 50% | worker RSS before → peak |",
        "|---|---:|---:|---:|---:|:---:|---:|",
    ]
    names = {
        "api csv": "`GET /v1/customers/export?format=csv`",
        "api jsonl": "`GET /v1/customers/export?format=jsonl`",
        APP: "admin CSV (`/admin/customers/customer/export.csv`)",
        BEFORE: "admin CSV, before",
    }
    for name, export in run.export.items():
        share = export.rows_per_second / floor.rows_per_second
        goal = met_text(share >= EXPORT_GOAL) if name.startswith("api") else "—"
        lines.append(
            f"| {names.get(name, name)} | {export.megabytes:.0f} | {export.seconds:.1f}"
            f" | {export.rows_per_second:,.0f} | {share:.0%} | {goal}"
            f" | {export.baseline_rss_mib:.0f} → {export.peak_rss_mib:.0f} MiB |"
        )
    return [*lines, ""]


def import_floor_lines(writes: Writes, *, total: int) -> list[str]:
    floor = writes.indexed_copy_rows_per_second
    share = writes.import_rows_per_second / floor
    rss_met = writes.import_peak_rss_mib * 1.048576 <= IMPORT_RSS_GOAL_MB
    return [
        f"**The import at a million rows**: `manage.py import_customers` of a realistic"
        f" {writes.import_rows:,}-row file (bench/importfile.py: every field filled, metadata,"
        " timestamps with offsets, ~10% of rows with a parent) into an empty scope of the"
        f" table holding the {total:,} customers: {writes.import_seconds:.1f}s,"
        f" **{writes.import_rows_per_second:,.0f} rows/s**, with its"
        f" {writes.import_events:,} events. The floor for this schema: the same rows as the"
        " import stored them (every column, dumped by COPY) loaded by one plain `COPY ... FROM"
        " STDIN (FORMAT csv)` into the customer table itself (its"
        f" {len(writes.customer_indexes)} indexes and the {total:,} rows already in them;"
        " constraints checked at once; rolled back), after the import's scope was deleted:"
        f" {writes.indexed_copy_seconds:.1f}s, **{floor:,.0f} rows/s**. The import makes"
        f" **{share:.0%}** of that (goal ≥ {IMPORT_FLOOR_GOAL:.0%}:"
        f" {met_text(share >= IMPORT_FLOOR_GOAL)}), while also checking every row, writing"
        " its events and the per-status counts. The command's peak RSS (wait4's"
        f" `ru_maxrss`): **{writes.import_peak_rss_mib * 1.048576:.0f} MB** (goal ≤"
        f" {IMPORT_RSS_GOAL_MB} MB: {met_text(rss_met)}). Seeding a million"
        f" (`seed_customers`, above) recorded {writes.seed_events:,} events; its peak RSS"
        f" {writes.seed_peak_rss_mib * 1.048576:.0f} MB.",
        "",
    ]


# -- Issue "Events and webhooks" ----------------------------------------------------------------

WRITE_GOAL = 0.20  # at most 20% slower with events
IMPORT_EVENTS_GOAL = 0.70  # the import with events at least 70% of its rows/s without
DELIVERY_GOAL = 200  # deliveries/s, one worker


def event_log_lines(run: Measurements) -> list[str]:
    lines = ["## The event log and webhooks", ""]
    writes = run.http_writes
    if writes is not None:
        samples = len(writes.create[EVENTS_ON])
        load = run.http_writes_load
        lines += [
            "**Writes over HTTP, events on and off.** *Events on*: this checkout's app, served"
            " as above (`crm.wsgi`); *events off*: the same app, same code and settings, with"
            " `customers.services.customer_event_record` (the event's INSERT and its webhook"
            " deliveries' query, in the change's transaction) replaced by a no-op"
            " (`gunicorn bench.eventsoff.wsgi`): what the event log adds to a write, measured"
            " by taking it out rather than against an older commit, whose other changes would"
            f" count too. {samples} creates (`POST /v1/customers`, a full customer with"
            " metadata) and as many updates (`PATCH /v1/customers/{id}`, a new name) per"
            " server, 5 at a time, the two servers taking turns (order alternating), into a"
            " scratch scope of the million-row table; no webhook endpoint subscribed there."
            + (
                f" Other processes used {load.others_cores:.0%} of a core meanwhile; load"
                f" average {load.load_average_before} before, {load.load_average_after} after."
                if load is not None
                else ""
            ),
            "",
            "| write | events on p50 | events off p50 | slower | events on p95 | events off p95"
            " | goal ≤ +20% |",
            "|---|---:|---:|---:|---:|---:|:---:|",
        ]
        for kind, name in (("create", "create"), ("update", "update")):
            slower = writes.slower(kind)
            lines.append(
                f"| {name} | {milliseconds(writes.p50(kind, EVENTS_ON))}"
                f" | {milliseconds(writes.p50(kind, EVENTS_OFF))} | {slower:+.0%}"
                f" | {milliseconds(writes.p95(kind, EVENTS_ON))}"
                f" | {milliseconds(writes.p95(kind, EVENTS_OFF))}"
                f" | {met_text(slower <= WRITE_GOAL)} |"
            )
        lines.append("")
    imports = run.import_events
    if imports is not None:
        ratio = imports.ratio
        lines += [
            f"**The import with and without its events**: the realistic {imports.rows:,}-row"
            " file imported four times into an empty scratch scope (on, off, off, on; the"
            " scope deleted between runs), *off* being the same command with"
            " `customers.importer.customer_created_events_record` replaced by a function that"
            " writes nothing (bench/import_without_events.py). With events:"
            f" {imports.rows_per_second(EVENTS_ON):,.0f} rows/s (median of"
            f" {', '.join(f'{s:.1f}s' for s in imports.seconds[EVENTS_ON])}); without:"
            f" {imports.rows_per_second(EVENTS_OFF):,.0f} rows/s"
            f" ({', '.join(f'{s:.1f}s' for s in imports.seconds[EVENTS_OFF])}):"
            f" **{ratio:.0%}** (goal ≥ {IMPORT_EVENTS_GOAL:.0%}:"
            f" {met_text(ratio >= IMPORT_EVENTS_GOAL)}).",
            "",
        ]
        if imports.seed_seconds:
            on = imports.seed_rows_per_second(EVENTS_ON)
            off = imports.seed_rows_per_second(EVENTS_OFF)
            lines += [
                f"**Seeding with and without its events** (the same way: `seed_customers"
                f" --count {imports.seed_rows:,}`, two writers, on, off, off, on; *off* through"
                " bench/seed_without_events.py): with events"
                f" {on:,.0f} rows/s"
                f" ({', '.join(f'{s:.1f}s' for s in imports.seed_seconds[EVENTS_ON])}),"
                f" without {off:,.0f} rows/s"
                f" ({', '.join(f'{s:.1f}s' for s in imports.seed_seconds[EVENTS_OFF])}):"
                f' {on / off:.0%}. Seeding records events since this session (issue "Events'
                " and webhooks\", item 1: every command's changes); no goal is set for it, but"
                " the million-row seeding target above is affected.",
                "",
            ]
    hooks = run.webhooks
    if hooks is not None:
        one = next((d for d in hooks.drains if d.workers == 1), None)
        drains = "; ".join(
            f"{d.workers} worker{'s' if d.workers > 1 else ''}: {d.deliveries:,} in"
            f" {d.seconds:.1f}s, **{d.per_second:,.0f} deliveries/s**"
            for d in hooks.drains
        )
        lines += [
            "**Webhook delivery**: `manage.py deliver_webhooks` (production settings but for"
            " private URLs allowed, bench/hooks_settings.py, as the receiver is on 127.0.0.1),"
            " each process in its own transaction per claim of"
            " 20, to a threaded `http.server` on 127.0.0.1 that answers 204 at once. A backlog"
            f" of deliveries (one endpoint, `seed_customers` of {one.deliveries if one else 0:,}"
            " customers: their events and deliveries in bulk), drained from the workers' start"
            f" to the last arrival: {drains}"
            + (
                f" (goal ≥ {DELIVERY_GOAL} for one worker:"
                f" {met_text(one.per_second >= DELIVERY_GOAL)})."
                if one
                else "."
            ),
            "",
            "**Lag** from commit to delivery under load: creates over HTTP from 2 connections,"
            f" paced ({hooks.lag_rate:,.0f} a second, each committed before its answer), while one"
            f" worker (`--poll-seconds {hooks.poll_seconds:g}`) delivered"
            f" {hooks.lag_deliveries_per_second:,.0f} a second; each delivery's arrival minus"
            f" its create's answer, over {len(hooks.lags):,} deliveries: p50"
            f" **{milliseconds(hooks.lag_p50)}**, p95 **{milliseconds(hooks.lag_p95)}**.",
            "",
        ]
    return lines
