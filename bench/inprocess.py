"""Where a request's time goes, per checkout, without HTTP: the benchmark's queries through
Django's test client (every middleware, DRF, the database), one process per checkout, the
processes taking turns, so that the machine's noise falls on all of them alike.

    .venv/bin/python bench/inprocess.py /tmp/crm-before /tmp/crm-after [--rounds 8 --per 20]

Per query and checkout it prints medians of: the wall time, the request thread's CPU time
(``time.thread_time``: the Python work, the database driver's included) and the wall time
spent in SQL (a connection ``execute_wrapper``). Run bench/run.py once first: it seeds the
database and creates the staff user the admin queries log in as. A temporary API key is
created and revoked. Used for docs/benchmarks.md's findings.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def worker(checkout: Path) -> None:
    """Serve ``PATH KIND COUNT`` lines from stdin with one JSON line of samples each."""
    sys.path.insert(0, str(checkout))
    os.chdir(checkout)
    import warnings

    warnings.simplefilter("ignore")  # whitenoise: no staticfiles directory in a worktree
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    import customers

    if not customers.__file__.startswith(str(checkout)):
        raise SystemExit(f"customers imported from {customers.__file__}, not {checkout}")
    clients = {
        "api": Client(HTTP_AUTHORIZATION=f"Bearer {os.environ['BENCH_API_KEY']}"),
        "admin": Client(),
    }
    clients["admin"].force_login(
        get_user_model().objects.get(username=os.environ["BENCH_STAFF_USERNAME"])
    )
    in_sql = [0.0]

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            in_sql[0] += time.perf_counter() - started

    connection.execute_wrappers.append(timed)
    print("ready", flush=True)
    for line in sys.stdin:
        path, kind, count = line.split()
        samples = []
        for _ in range(int(count)):
            in_sql[0] = 0.0
            cpu, wall = time.thread_time(), time.perf_counter()
            response = clients[kind].get(path, HTTP_HOST="127.0.0.1")
            samples.append((time.perf_counter() - wall, time.thread_time() - cpu, in_sql[0]))
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}")
        print(json.dumps(samples), flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per", type=int, default=20, help="requests per turn")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="the --quick database")
    parser.add_argument("--only", help="queries whose name contains this")
    arguments = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.common import (
        DEFAULT_DATABASE_URL,
        QUICK_DATABASE_URL,
        STAFF_USERNAME,
        BenchError,
    )
    from bench.data import app_value, data_plan, django_environment, manage, pick_probes
    from bench.queries import build_queries

    database_url = QUICK_DATABASE_URL if arguments.quick else DEFAULT_DATABASE_URL
    environment = django_environment(database_url=database_url, secret_key="in-process" * 6)
    main_count = data_plan(quick=arguments.quick)[0].count
    queries = build_queries(
        probes=pick_probes(database_url, main_count=main_count),
        deep_offset=500_000 if main_count >= 600_000 else main_count * 5 // 6,
        common_word="cloud",
        search_count_limit=app_value(environment, "customers.selectors", "SEARCH_COUNT_LIMIT"),
    )
    if arguments.only:
        queries = [query for query in queries if arguments.only in query.name]
    output = manage(
        environment,
        "create_api_key",
        "--tenant=tenant_bench",
        "--environment=env_bench_production",
        "--name=inprocess",
        capture=True,
    )
    api_key = output.strip().splitlines()[-1].strip()
    workers: dict[Path, subprocess.Popen] = {}
    checkouts = [checkout.resolve() for checkout in arguments.checkouts]
    try:
        for checkout in checkouts:
            workers[checkout] = subprocess.Popen(
                [sys.executable, __file__, "--worker", str(checkout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={
                    **environment,
                    "BENCH_API_KEY": api_key,
                    "BENCH_STAFF_USERNAME": STAFF_USERNAME,
                },
            )
            if workers[checkout].stdout.readline().strip() != "ready":
                raise BenchError(f"the worker for {checkout} did not start")

        def run(checkout: Path, path: str, kind: str, count: int) -> list:
            process = workers[checkout]
            process.stdin.write(f"{path} {kind} {count}\n")
            process.stdin.flush()
            answer = process.stdout.readline()
            if not answer:
                raise BenchError(f"the worker for {checkout} stopped")
            return json.loads(answer)

        for query in queries:
            taken: dict[Path, list] = {checkout: [] for checkout in checkouts}
            for checkout in checkouts:
                run(checkout, query.path, query.kind, arguments.warmup)
            for number in range(arguments.rounds):
                turn = number % len(checkouts)
                for checkout in checkouts[turn:] + checkouts[:turn]:
                    taken[checkout] += run(checkout, query.path, query.kind, arguments.per)
            print(f"== {query.name}")
            for checkout, samples in taken.items():
                wall, cpu, sql = (
                    statistics.median(sample[index] for sample in samples) * 1000
                    for index in range(3)
                )
                print(f"  {checkout!s:<28} wall {wall:7.2f}  cpu {cpu:7.2f}  sql {sql:7.2f} ms")
    finally:
        for process in workers.values():
            process.stdin.close()
            process.wait(timeout=30)
        manage(environment, "revoke_api_key", api_key[:11], capture=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]))
    else:
        sys.exit(main(sys.argv[1:]))
