"""Benchmark the app as production runs it, against PostgreSQL holding a million customers.

    .venv/bin/python bench/run.py            # the full run; writes docs/benchmarks.md
    .venv/bin/python bench/run.py --quick    # 50k customers, few samples: a smoke test
    git worktree add /tmp/crm-before <commit>
    .venv/bin/python bench/run.py --compare /tmp/crm-before   # before/after, in one run

What it does, in order:

1. Creates the database if missing (default ``postgres://root@127.0.0.1:5432/crm_bench``;
   ``crm_bench_quick`` with ``--quick``), migrates it, and seeds it with ``seed_customers``
   unless it already holds the planned data (so re-runs start at once): 600k customers in
   the API key's scope (``tenant_bench/env_bench_production``), 100k in the same tenant's
   sandbox environment (the admin's operator sees both), and 3 x 100k in other tenants.
   After seeding: ``VACUUM ANALYZE``.
2. Creates an API key for the benchmark scope and a staff user of ``tenant_bench``.
3. Starts gunicorn the way production does (``gunicorn crm.wsgi -c gunicorn.conf.py``,
   ``crm.settings.production``, a secret key, ``DATABASE_URL``, persistent connections, or
   with ``--db-pool N`` a connection pool of N per process),
   bound to 127.0.0.1 on a free port, and logs in to the admin (CSRF token, cookie jar).
4. Captures the app's answer to each API query and starts the *framework floor*
   (bench/framework: bare Django + DRF, no database, the same gunicorn settings) to answer
   those very bytes from memory. For each query, warm-up requests; then rounds of a few
   requests per query from each server, over one keep-alive connection for the API and one
   for the admin (p50, p95 per query), and as many runs of the same query as raw SQL
   through psycopg (the page query, plus the total's query when the app needs one): the
   SQL floor. Ratios: app / SQL floor, app / framework floor. Taking turns puts a slow
   phase of the machine on every query and every server alike.
5. Throughput of the default list with 8 concurrent keep-alive connections.
6. The CSV export of the whole 600k scope: time, rows/s, and the workers' peak RSS.
7. With the server stopped, bulk writes into scratch scopes of the same table:
   ``seed_customers --count 1000000``, and ``import_customers`` of a 100k-row file written
   by ``seed_customers --csv`` (with the events it records); then the scratch scopes are
   deleted (``--no-writes`` skips).
8. Prints the results and writes them to ``docs/benchmarks.md`` (full runs; ``--output``),
   keeping a hand-written "Findings" section of the page; ``--json`` writes every sample.

``--compare CHECKOUT`` serves a second copy of the app from another checkout (e.g. a git
worktree of an older commit; the same virtualenv) against the same database, migrated by
this checkout's code: both servers answer every query, taking turns within each round
(steps 4 to 6: the throughput runs go this, that, that, this), and step 7 runs that
checkout's commands too. The page then has a before/after table.

Every server it started is stopped on every exit path. All traffic goes to 127.0.0.1.

This file is the command line; the package's modules do the work: ``data`` (the database,
the plan, seeding, probes), ``server`` (gunicorn, HTTP clients, the admin login),
``queries`` (the timed queries and their raw-SQL floors), ``measure`` (the interleaved
timing, throughput, the export, bulk writes), ``report`` (the Markdown page), ``system``
(/proc: CPU time, memory, the machine) and ``common`` (names shared by all of them).
"""

import argparse
import contextlib
import json
import secrets
import shlex
import signal
import sys
import tempfile
import urllib.parse
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: import the package from the checkout
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)  # the package's modules are `bench.*`, not top-level names
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

import psycopg

from bench.common import (
    BENCH_ENVIRONMENT,
    BENCH_TENANT,
    DEFAULT_DATABASE_URL,
    QUICK_DATABASE_URL,
    ROOT,
    STAFF_USERNAME,
    BenchError,
)
from bench.data import (
    app_value,
    check_contract_columns,
    check_loopback_url,
    create_credentials,
    data_plan,
    database_name,
    django_environment,
    ensure_data,
    ensure_database,
    manage,
    pick_probes,
)
from bench.eventlog import (
    EVENTS_OFF,
    EVENTS_ON,
    HTTP_ENVIRONMENT,
    measure_http_writes,
    measure_import_events,
    measure_webhooks,
    scratch_api_key,
)
from bench.measure import (
    APP,
    BEFORE,
    FRAMEWORK_FLOOR,
    HttpVariant,
    LoadNote,
    LoadWatch,
    Measurements,
    SqlFloorVariant,
    capture_bodies,
    combined,
    copy_export_floor,
    import_file_of,
    measure_export,
    measure_interleaved,
    measure_throughput,
    measure_writes,
    remove_write_scopes,
)
from bench.queries import build_queries, cursor_query, find_queries
from bench.report import console_line, report
from bench.server import Client, Server, admin_login, framework_floor_server
from bench.system import checkout_description


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50k customers, few samples")
    parser.add_argument("--database-url", help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument("--reset", action="store_true", help="drop and rebuild the database")
    parser.add_argument("--samples", type=int, help="timed requests per query (default 40)")
    parser.add_argument("--warmup", type=int, help="untimed requests first (default 10)")
    parser.add_argument("--throughput-seconds", type=float, help="default 10")
    parser.add_argument("--connections", type=int, default=8, help="for throughput (8)")
    parser.add_argument("--common-word", default="cloud", help="the admin search's common word")
    parser.add_argument(
        "--db-pool",
        type=int,
        default=0,
        metavar="N",
        help="serve with a connection pool of N per process (DJANGO_DB_POOL_SIZE) instead of"
        " persistent connections",
    )
    parser.add_argument("--no-export", action="store_true", help="skip the exports")
    parser.add_argument(
        "--no-writes", action="store_true", help="skip the bulk seed and import measurements"
    )
    parser.add_argument(
        "--no-events",
        action="store_true",
        help="skip the event log's measurements (writes over HTTP with events on and off, the"
        " import with and without events, webhook delivery)",
    )
    parser.add_argument(
        "--import-rows", type=int, help="rows of the bulk import's file (default 1,000,000)"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="CHECKOUT",
        help="also serve the app from another checkout (e.g. a git worktree of an older"
        " commit) against the same database, its requests taking turns with this one's:"
        " the before/after tables",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the Markdown report (default docs/benchmarks.md; none with --quick)",
    )
    parser.add_argument("--json", type=Path, help="also write every sample there (JSON)")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    arguments.database_url = arguments.database_url or (
        QUICK_DATABASE_URL if quick else DEFAULT_DATABASE_URL
    )
    arguments.samples = arguments.samples or (10 if quick else 40)
    arguments.warmup = arguments.warmup if arguments.warmup is not None else (3 if quick else 10)
    arguments.throughput_seconds = arguments.throughput_seconds or (3.0 if quick else 10.0)
    if arguments.output is None and not quick:
        arguments.output = ROOT / "docs" / "benchmarks.md"
    if arguments.compare is not None:
        arguments.compare = arguments.compare.resolve()
        for needed in ("manage.py", "gunicorn.conf.py", "crm/wsgi.py"):
            if not (arguments.compare / needed).is_file():
                parser.error(f"--compare {arguments.compare}: no {needed} there")
        if arguments.compare == ROOT:
            parser.error("--compare names this checkout")
    return arguments


def raise_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # so that `finally` stops the server


def revoke_api_key(environment: dict[str, str], api_key: str) -> None:
    with contextlib.suppress(BenchError):
        manage(environment, "revoke_api_key", api_key[:11], capture=True)


def deep_cursor_query(port: int, headers: dict[str, str], depth: int, arguments):
    """The cursor page after row ``depth``: the cursor from the offset page that ends there
    (read once, untimed), the floor's keyset from that page's last row."""
    client = Client(port, headers)
    try:
        status, body, _ = client.get(f"/v1/customers?offset={depth - 50}&limit=50")
    finally:
        client.close()
    if status != 200:
        raise BenchError(f"the page before the deep cursor: HTTP {status}: {body[:300]!r}")
    page = json.loads(body)
    cursor = page["pagination"]["next_cursor"]
    last = page["items"][-1]
    with psycopg.connect(arguments.database_url, autocommit=True) as connection:
        created_at = connection.execute(
            "SELECT created_at FROM customers_customer WHERE id = %s", [last["id"]]
        ).fetchone()[0]
    return cursor_query(cursor=cursor, after=(created_at, last["id"]), depth=depth)


def measure_events_over_http(run, arguments, environment, servers, log_directory) -> None:
    """Create and update over HTTP with events on (the app's server) and off (the same app,
    its event writing a no-op: bench/eventsoff), taking turns; then webhook delivery."""
    off = Server(
        label=EVENTS_OFF,
        environment=environment,
        log_path=log_directory / "eventsoff.log",
        app="bench.eventsoff.wsgi",
    )
    remove_write_scopes(arguments.database_url)
    api_key = scratch_api_key(environment, HTTP_ENVIRONMENT)
    try:
        off.start()
        print("create and update over HTTP, events on and off")
        pids = lambda: [*servers[APP].pids(), *off.pids()]  # noqa: E731
        with LoadWatch(pids, database_name(arguments.database_url)) as watch:
            run.http_writes = measure_http_writes(
                servers={EVENTS_ON: servers[APP], EVENTS_OFF: off},
                api_key=api_key,
                samples=20 if arguments.quick else 200,
            )
        run.http_writes_load = watch.load
        for kind in ("create", "update"):
            print(
                f"  {kind}: p50 {run.http_writes.p50(kind, EVENTS_ON):.1f} ms with events,"
                f" {run.http_writes.p50(kind, EVENTS_OFF):.1f} ms without"
                f" ({run.http_writes.slower(kind):+.0%})"
            )
    finally:
        off.stop()
        revoke_api_key(environment, api_key)
    print("webhook delivery")
    with LoadNote(run.loads, "webhook delivery"):
        run.webhooks = measure_webhooks(
            database_url=arguments.database_url,
            environment=environment,
            app=servers[APP],
            backlog=2_000 if arguments.quick else 20_000,
            lag_seconds=5 if arguments.quick else 20,
        )
    remove_write_scopes(arguments.database_url)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    command = "python bench/run.py" + "".join(f" {shlex.quote(arg)}" for arg in argv)
    plan = data_plan(quick=arguments.quick)
    main_scope = plan[0]
    deep_offset = 500_000 if main_scope.count >= 600_000 else main_scope.count * 5 // 6

    check_loopback_url(arguments.database_url)
    environment = django_environment(
        database_url=arguments.database_url,
        secret_key=secrets.token_urlsafe(50),
        db_pool_size=arguments.db_pool,
    )
    ensure_database(arguments.database_url, reset=arguments.reset)
    print("migrating")
    manage(environment, "migrate", "--no-input", "-v", "0")
    seeding = ensure_data(database_url=arguments.database_url, environment=environment, plan=plan)
    check_contract_columns(arguments.database_url)
    # The admin search's count stops at the app's limit; the floor counts as far.
    search_count_limit = app_value(environment, "customers.selectors", "SEARCH_COUNT_LIMIT")

    credentials = create_credentials(environment, staff_username=STAFF_USERNAME)
    api_headers = {"Authorization": f"Bearer {credentials.api_key}"}
    probes = pick_probes(arguments.database_url, main_count=main_scope.count)
    queries = build_queries(
        probes=probes,
        deep_offset=deep_offset,
        common_word=arguments.common_word,
        search_count_limit=search_count_limit,
    )
    queries += find_queries(probes=probes, common_word=arguments.common_word)

    log_directory = Path(tempfile.mkdtemp(prefix="crm_bench_"))
    checkouts = {APP: ROOT}
    if arguments.compare is not None:
        checkouts[BEFORE] = arguments.compare
    servers = {
        label: Server(
            label=label,
            environment=environment,
            log_path=log_directory / f"{label}.log",
            cwd=checkout,
        )
        for label, checkout in checkouts.items()
    }
    run = Measurements(checkouts={label: checkout_description(c) for label, c in checkouts.items()})
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(revoke_api_key, environment, credentials.api_key)
        cookies, variants = {}, []
        for label, server in servers.items():
            cleanup.callback(server.stop)
            server.start()
            cookies[label] = admin_login(
                server.port, username=STAFF_USERNAME, password=credentials.staff_password
            )
            variant = HttpVariant(
                label,
                {
                    "api": Client(server.port, api_headers),
                    "admin": Client(server.port, {"Cookie": cookies[label]}),
                },
                old=label == BEFORE,
            )
            cleanup.callback(variant.close)
            variants.append(variant)
        # The page after the row at the deep offset, by the cursor the app gives for it (the
        # offset page before it is read once, here, untimed): a cursor walk's page there.
        queries.append(deep_cursor_query(servers[APP].port, api_headers, deep_offset, arguments))
        # The framework floor answers, from memory, the very bodies the app answered.
        api_queries = [query for query in queries if query.kind == "api"]
        bodies = {variant.name: capture_bodies(variant, api_queries) for variant in variants}
        if BEFORE in bodies:
            run.same_bodies = {
                query.name: bodies[BEFORE][query.name] == bodies[APP][query.name]
                for query in api_queries
                if query.name in bodies[BEFORE]
            }
        framework = framework_floor_server(
            environment=environment,
            bodies={urllib.parse.urlsplit(q.path).query: bodies[APP][q.name] for q in api_queries},
            api_key=credentials.api_key,
            log_directory=log_directory,
        )
        cleanup.callback(framework.stop)
        framework.start()
        framework_floor = HttpVariant(FRAMEWORK_FLOOR, {"api": Client(framework.port, api_headers)})
        cleanup.callback(framework_floor.close)
        if capture_bodies(framework_floor, api_queries) != bodies[APP]:
            raise BenchError("the framework floor does not answer the app's bodies")
        connection = cleanup.enter_context(psycopg.connect(arguments.database_url, autocommit=True))
        every_server = [*servers.values(), framework]
        with LoadWatch(
            lambda: [pid for each in every_server for pid in each.pids()],
            database_name(arguments.database_url),
        ) as watch:
            run.results = measure_interleaved(
                queries,
                variants=[*variants, framework_floor, SqlFloorVariant(connection)],
                warmup=arguments.warmup,
                samples=arguments.samples,
            )
        run.load = watch.load
        framework.stop()  # not needed any more: its workers would only take memory
        for variant in variants:
            variant.close()
        for result in run.results:
            print(console_line(result))
        print(f"  other processes: {run.load.others_cores:.0%} of a core on average")

        # Throughput, each server in turn: this one, the other twice, this one again, so
        # that a drift of the machine's speed falls on both alike.
        order = [APP] if BEFORE not in servers else [APP, BEFORE, BEFORE, APP]
        throughput_runs: dict[str, list] = {label: [] for label in servers}
        for label in order:
            print(
                f"throughput of {label}: {arguments.connections} connections,"
                f" {arguments.throughput_seconds}s"
            )
            measured = measure_throughput(
                server=servers[label],
                headers=api_headers,
                path="/v1/customers",
                connections=arguments.connections,
                seconds=arguments.throughput_seconds,
            )
            print(f"  {measured.per_second:.0f} req/s, {measured.errors} errors")
            throughput_runs[label].append(measured)
        run.throughput = {label: combined(each) for label, each in throughput_runs.items()}
        if not arguments.no_export:
            exports = [
                # The list's (and its export's) current environment: the operator's first,
                # BENCH_ENVIRONMENT, as for the changelist queries above. A specific
                # `environment=` would be a redirect that switches to it.
                (label, label, {"Cookie": cookies[label]}, "/admin/customers/customer/export.csv")
                for label in servers
            ]
            exports += [
                (f"api {fmt}", APP, api_headers, f"/v1/customers/export?format={fmt}")
                for fmt in ("csv", "jsonl")
            ]
            for name, label, headers, path in exports:
                print(f"export of {BENCH_TENANT}/{BENCH_ENVIRONMENT}: {path} ({label})")
                with LoadNote(run.loads, f"export: {name}"):
                    export = measure_export(server=servers[label], headers=headers, path=path)
                print(f"  {export.rows:,} rows in {export.seconds:.1f}s")
                if export.rows != main_scope.count:
                    raise BenchError(
                        f"{name}: the export has {export.rows:,} rows, not {main_scope.count:,}"
                    )
                run.export[name] = export
            print("COPY (SELECT ...) TO STDOUT of the same rows")
            with LoadNote(run.loads, "export: COPY floor"):
                run.copy_floor = copy_export_floor(
                    arguments.database_url, tenant=BENCH_TENANT, environment=BENCH_ENVIRONMENT
                )
            print(f"  {run.copy_floor.rows:,} rows in {run.copy_floor.seconds:.1f}s")

        if not arguments.no_events:
            measure_events_over_http(run, arguments, environment, servers, log_directory)
            cleanup.callback(remove_write_scopes, arguments.database_url)

    if not arguments.no_writes:
        import_rows = arguments.import_rows or (20_000 if arguments.quick else 1_000_000)
        with import_file_of(environment, rows=import_rows) as import_file:
            for label, checkout in checkouts.items():
                print(f"bulk writes with the commands of {label} ({checkout})")
                run.writes[label] = measure_writes(
                    database_url=arguments.database_url,
                    environment=environment,
                    seed_rows=100_000 if arguments.quick else 1_000_000,
                    import_file=import_file,
                    import_rows=import_rows,
                    cwd=checkout,
                    floors=label == APP,
                    label=label,
                )
    if not arguments.no_events:
        events_rows = 10_000 if arguments.quick else 100_000
        with import_file_of(environment, rows=events_rows) as import_file:
            print(f"the import of {events_rows:,} rows with and without its events")
            with LoadNote(run.loads, "import with and without events"):
                run.import_events = measure_import_events(
                    database_url=arguments.database_url,
                    environment=environment,
                    import_file=import_file,
                    rows=events_rows,
                )
    text = report(
        run,
        command=command,
        plan=plan,
        seeding=seeding,
        server=servers[APP],
        throughput_target=200,
        database_url=arguments.database_url,
        warmup=arguments.warmup,
        samples=arguments.samples,
        search_count_limit=search_count_limit,
        kept=arguments.output.read_text() if arguments.output and arguments.output.exists() else "",
    )
    print()
    print(text)
    if arguments.output is not None:
        arguments.output.write_text(text)
        print(f"written to {arguments.output}")
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(run.as_json(), indent=1))
        print(f"samples written to {arguments.json}")
    return 0


if __name__ == "__main__":
    try:
        if sys.argv[1:2] == ["--replica"]:  # read replicas: bench/replica.py (its own options)
            from bench import replica

            sys.exit(replica.main(sys.argv[2:]))
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
