"""Benchmark the app as production runs it, against PostgreSQL holding a million customers.

    .venv/bin/python bench/run.py            # the full run; writes docs/benchmarks.md
    .venv/bin/python bench/run.py --quick    # 50k customers, few samples: a smoke test

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
   by ``seed_customers --csv``; then the scratch scopes are deleted (``--no-writes`` skips).
8. Prints the results and writes them to ``docs/benchmarks.md`` (full runs; ``--output``).

The server it started is stopped on every exit path. All traffic goes to 127.0.0.1.

This file is the command line; the package's modules do the work: ``data`` (the database,
the plan, seeding, probes), ``server`` (gunicorn, HTTP clients, the admin login),
``queries`` (the timed queries and their raw-SQL floors), ``measure`` (the interleaved
timing, throughput, the export, bulk writes), ``report`` (the Markdown page), ``system``
(/proc: CPU time, memory, the machine) and ``common`` (names shared by all of them).
"""

import argparse
import contextlib
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
    django_environment,
    ensure_data,
    ensure_database,
    manage,
    pick_probes,
)
from bench.measure import (
    FRAMEWORK_FLOOR,
    HttpVariant,
    Result,
    SqlFloorVariant,
    capture_bodies,
    import_file_of,
    measure_export,
    measure_interleaved,
    measure_throughput,
    measure_writes,
)
from bench.queries import build_queries
from bench.report import console_line, report
from bench.server import Client, Server, admin_login, framework_floor_server


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
    parser.add_argument("--no-export", action="store_true", help="skip the CSV export")
    parser.add_argument(
        "--no-writes", action="store_true", help="skip the bulk seed and import measurements"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the Markdown report (default docs/benchmarks.md; none with --quick)",
    )
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
    return arguments


def raise_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # so that `finally` stops the server


def revoke_api_key(environment: dict[str, str], api_key: str) -> None:
    with contextlib.suppress(BenchError):
        manage(environment, "revoke_api_key", api_key[:11], capture=True)


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

    log_directory = Path(tempfile.mkdtemp(prefix="crm_bench_"))
    server = Server(label="the app", environment=environment, log_path=log_directory / "app.log")
    results: list[Result] = []
    throughput = export = None
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(revoke_api_key, environment, credentials.api_key)
        cleanup.callback(server.stop)
        server.start()
        cookie = admin_login(
            server.port, username=STAFF_USERNAME, password=credentials.staff_password
        )
        app = HttpVariant(
            "app",
            {
                "api": Client(server.port, api_headers),
                "admin": Client(server.port, {"Cookie": cookie}),
            },
        )
        cleanup.callback(app.close)
        # The framework floor answers, from memory, the very bodies the app answered.
        api_queries = [query for query in queries if query.kind == "api"]
        bodies = capture_bodies(app, api_queries)
        framework = framework_floor_server(
            environment=environment,
            bodies={urllib.parse.urlsplit(q.path).query: bodies[q.name] for q in api_queries},
            api_key=credentials.api_key,
            log_directory=log_directory,
        )
        cleanup.callback(framework.stop)
        framework.start()
        framework_floor = HttpVariant(FRAMEWORK_FLOOR, {"api": Client(framework.port, api_headers)})
        cleanup.callback(framework_floor.close)
        if capture_bodies(framework_floor, api_queries) != bodies:
            raise BenchError("the framework floor does not answer the app's bodies")
        connection = cleanup.enter_context(psycopg.connect(arguments.database_url, autocommit=True))
        results = measure_interleaved(
            queries,
            variants=[app, framework_floor, SqlFloorVariant(connection)],
            warmup=arguments.warmup,
            samples=arguments.samples,
        )
        framework.stop()  # not needed any more: its workers would only take memory
        for result in results:
            print(console_line(result))
        app.close()
        print(f"throughput: {arguments.connections} connections, {arguments.throughput_seconds}s")
        throughput = measure_throughput(
            server=server,
            headers=api_headers,
            path="/v1/customers",
            connections=arguments.connections,
            seconds=arguments.throughput_seconds,
        )
        print(f"  {throughput.per_second:.0f} req/s, {throughput.errors} errors")
        if not arguments.no_export:
            print(f"CSV export of {BENCH_TENANT}/{BENCH_ENVIRONMENT}")
            export = measure_export(
                server=server,
                cookie=cookie,
                # The list's (and its export's) current environment: the operator's first,
                # BENCH_ENVIRONMENT, as for the changelist queries above. A specific
                # `environment=` would be a redirect that switches to it.
                path="/admin/customers/customer/export.csv",
            )
            print(f"  {export.rows:,} rows in {export.seconds:.1f}s")

    if export is not None and export.rows != main_scope.count:
        raise BenchError(f"the export has {export.rows:,} rows, not {main_scope.count:,}")
    writes = None
    if not arguments.no_writes:
        import_rows = 10_000 if arguments.quick else 100_000
        with import_file_of(environment, rows=import_rows) as import_file:
            writes = measure_writes(
                database_url=arguments.database_url,
                environment=environment,
                seed_rows=100_000 if arguments.quick else 1_000_000,
                import_file=import_file,
                import_rows=import_rows,
            )
    text = report(
        command=command,
        plan=plan,
        seeding=seeding,
        server=server,
        results=results,
        throughput=throughput,
        throughput_target=200,
        export=export,
        writes=writes,
        database_url=arguments.database_url,
        warmup=arguments.warmup,
        samples=arguments.samples,
        search_count_limit=search_count_limit,
    )
    print()
    print(text)
    if arguments.output is not None:
        arguments.output.write_text(text)
        print(f"written to {arguments.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
