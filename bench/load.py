"""Sustained load: 16 clients for 60 s against gunicorn with production settings (locust).

    .venv/bin/python bench/load.py                       # 60 s, 16 clients
    .venv/bin/python bench/load.py --seconds 20 --clients 8 --output /tmp/load.md

It serves the app as production does (``gunicorn crm.wsgi -c gunicorn.conf.py``,
``crm.settings.production``, persistent connections or ``--db-pool N``) on 127.0.0.1 from
the benchmark database (``crm_bench``: 1,000,000 customers, 600,000 of them in
``tenant_bench/env_bench_production``; bench/run.py seeds it, this script does not), and
runs locust headless (bench/locustfile.py) for ``--seconds``: every kind of list query of
that scope (the default list, filters, ``q``, date bounds, metadata, an offset page, cursor
pages, ``POST /v1/customers/search``) and creates and updates in a scratch scope of its own
(``tenant_bench_writes/env_bench_writes_load``), deleted afterwards with its events: the
benchmark's data is left as it was. The API keys it makes are revoked at the end.

It reports, per kind, the requests, errors, and p50/p95/p99 (exact, from every request's
time as locust measured it), the throughput, the machine and its load average (other
processes share its cores: the report says how busy it was), and exits 1 on any error.
Loopback only; it stops by itself.
"""

import argparse
import json
import os
import resource
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):  # `python bench/load.py`: import the package from the checkout
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

import psycopg

from bench.common import (
    BENCH_ENVIRONMENT,
    BENCH_TENANT,
    CUSTOMER_TABLE,
    DEFAULT_DATABASE_URL,
    LOOPBACK,
    ROOT,
    BenchError,
)
from bench.data import (
    check_loopback_url,
    database_name,
    django_environment,
    manage,
    pick_probes,
    scope_counts,
)
from bench.measure import WRITES_TENANT, remove_write_scopes
from bench.server import Server
from bench.system import (
    cpu_seconds,
    load_average,
    machine,
    postgres_backends_of,
)

LOAD_ENVIRONMENT = "env_bench_writes_load"
LOCUST = str(Path(sys.executable).with_name("locust"))
MAIN_COUNT = 600_000
# The order of the report's table.
KINDS = [
    "default list",
    "email=",
    "external_id=",
    "customer_ids= (20)",
    "status + sort=name",
    "q= (rare)",
    "q= (common word)",
    "created_at bounds",
    "metadata[...]",
    "offset=10000",
    "cursor first page",
    "cursor next page",
    "POST search",
    "create",
    "update",
]


def api_key(environment: dict[str, str], tenant: str, scope: str, name: str) -> str:
    output = manage(
        environment,
        "create_api_key",
        f"--tenant={tenant}",
        f"--environment={scope}",
        f"--name={name}",
        capture=True,
    )
    return output.strip().splitlines()[-1].strip()


def probes_of(database_url: str) -> dict:
    probes = pick_probes(database_url, main_count=MAIN_COUNT)
    with psycopg.connect(database_url, autocommit=True) as connection:
        ids = [
            row[0]
            for row in connection.execute(
                f"SELECT id FROM {CUSTOMER_TABLE} WHERE tenant_id = %s AND environment_id = %s"
                " ORDER BY created_at DESC OFFSET 1000 LIMIT 20",
                [BENCH_TENANT, BENCH_ENVIRONMENT],
            )
        ]
        metadata, created = connection.execute(
            f"SELECT metadata, created_at FROM {CUSTOMER_TABLE}"
            " WHERE tenant_id = %s AND environment_id = %s AND metadata <> '{}'::jsonb"
            " ORDER BY created_at OFFSET 12345 LIMIT 1",
            [BENCH_TENANT, BENCH_ENVIRONMENT],
        ).fetchone()
    month = created.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
    return {
        "email": probes.email,
        "external_id": probes.external_id,
        "q_rare": probes.email_fragment,
        "q_common": "cloud",
        "ids": ids,
        "metadata": dict(list(metadata.items())[:2]),
        "gte": month.date().isoformat(),
        "lt": following.date().isoformat(),
    }


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def report(samples, *, seconds: float, arguments, command, busy: tuple[float, float], loads) -> str:
    by_kind: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    for kind, milliseconds, failed, _status in samples:
        by_kind[kind].append(milliseconds)
        failures[kind] += failed
    total = len(samples)
    lines = [
        f"- **Command**: `{command}` (locust {locust_version()}, headless, bench/locustfile.py)",
        f"- **Machine**: {machine()}; PostgreSQL on the same machine, everything over 127.0.0.1",
        f"- **Server**: {arguments.server_description}",
        f"- **Data**: `crm_bench`, reads from `{BENCH_TENANT}/{BENCH_ENVIRONMENT}`"
        f" ({arguments.scope_count:,} customers of 1,000,000); creates and updates into"
        f" `{WRITES_TENANT}/{LOAD_ENVIRONMENT}` (deleted afterwards)",
        f"- **Load**: {arguments.clients} clients, each one keep-alive connection sending its"
        f" next request as soon as the last answered, for {seconds:.0f} s: {total:,} requests,"
        f" {total / seconds:.0f} req/s, {sum(failures.values())} errors",
        f"- **Machine load**: `uptime` load average {loads[0]} before, {loads[1]} after; other"
        f" processes than the server, locust and PostgreSQL used {busy[0]:.0%} of a core on"
        f" average, and the hypervisor took {busy[1]:.0%} of one (steal time): other agents run"
        " tests on this 2-core machine",
        "",
        "| kind | requests | errors | p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in [*KINDS, *sorted(set(by_kind) - set(KINDS))]:
        values = sorted(by_kind.get(kind, []))
        if not values:
            continue
        p50, p95, p99 = (percentile(values, f) for f in (0.50, 0.95, 0.99))
        lines.append(
            f"| {kind} | {len(values):,} | {failures[kind]} | {p50:.1f} ms | {p95:.1f} ms"
            f" | {p99:.1f} ms | {values[-1]:.0f} ms |"
        )
    everything = sorted(ms for _, ms, _, _ in samples)
    if everything:
        lines.append(
            f"| **all** | {total:,} | {sum(failures.values())} |"
            f" {percentile(everything, 0.5):.1f} ms | {percentile(everything, 0.95):.1f} ms |"
            f" {percentile(everything, 0.99):.1f} ms | {everything[-1]:.0f} ms |"
        )
    return "\n".join(lines)


def locust_version() -> str:
    completed = subprocess.run([LOCUST, "--version"], capture_output=True, text=True, check=False)
    return (completed.stdout.split() or ["?", "?", "?"])[1]


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # locust, once it has exited
    return usage.ru_utime + usage.ru_stime


def cpu_times() -> tuple[float, float]:
    """(seconds the machine's cores ran anything, seconds the hypervisor took from them),
    since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def other_processes_busy(pids, run) -> tuple[float, float]:
    """The share of a core that processes other than ours (the server, locust, the
    database's backends) used during ``run()``, and the share the hypervisor took (steal)."""
    before_all, before_steal = cpu_times()
    before_ours = cpu_seconds(pids()) + children_cpu_seconds()
    started = time.monotonic()
    run()
    elapsed = time.monotonic() - started
    ours = cpu_seconds(pids()) + children_cpu_seconds() - before_ours
    after_all, after_steal = cpu_times()
    return (
        max(0.0, (after_all - before_all - ours) / elapsed),
        (after_steal - before_steal) / elapsed,
    )


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/load.py",
        description=(
            "Sustained mixed load (locust, headless) against gunicorn with production settings"
            " on the benchmark database (crm_bench; bench/run.py seeds it). Loopback only;"
            " stops by itself; writes go to a scratch scope deleted afterwards."
        ),
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--db-pool", type=int, default=0, help="DJANGO_DB_POOL_SIZE")
    parser.add_argument("--output", type=Path, help="also write the report (Markdown) here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    command = "python bench/load.py" + "".join(f" {shlex.quote(arg)}" for arg in argv)
    check_loopback_url(arguments.database_url)
    with psycopg.connect(arguments.database_url, autocommit=True) as connection:
        arguments.scope_count = scope_counts(connection).get((BENCH_TENANT, BENCH_ENVIRONMENT), 0)
    if arguments.scope_count < MAIN_COUNT:
        raise BenchError(
            f"{BENCH_TENANT}/{BENCH_ENVIRONMENT} holds {arguments.scope_count:,} customers, not"
            f" {MAIN_COUNT:,}: seed it with `python bench/run.py` first"
        )
    environment = django_environment(
        database_url=arguments.database_url,
        secret_key=secrets.token_urlsafe(50),
        db_pool_size=arguments.db_pool,
    )
    check = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise BenchError("crm_bench has unapplied migrations: run `python bench/run.py` first")
    remove_write_scopes(arguments.database_url, environment=LOAD_ENVIRONMENT, vacuum=False)
    manage(  # the scratch scope (its tenant and environment), empty
        environment,
        "seed_customers",
        "--count=0",
        f"--tenant={WRITES_TENANT}",
        f"--environment={LOAD_ENVIRONMENT}",
        capture=True,
    )
    read_key = api_key(environment, BENCH_TENANT, BENCH_ENVIRONMENT, "load-reads")
    write_key = api_key(environment, WRITES_TENANT, LOAD_ENVIRONMENT, "load-writes")
    probes = probes_of(arguments.database_url)
    log_directory = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = Server(
        label="load",
        environment=environment,
        log_path=log_directory / "gunicorn.log",
        ready_path="/healthz",
    )
    samples_path = log_directory / "samples.json"
    try:
        server.start()
        arguments.server_description = (
            f"`gunicorn crm.wsgi -c gunicorn.conf.py` ({server.expected_workers()} gthread"
            f" workers x {server.threads()} threads), `crm.settings.production`, "
            + (
                f"a connection pool of {arguments.db_pool} per process"
                if arguments.db_pool
                else "persistent connections (DJANGO_CONN_MAX_AGE=600)"
            )
            + ", the rate limiter on with a limit never reached"
        )
        locust_environment = {
            **os.environ,
            "LOAD_READ_KEY": read_key,
            "LOAD_WRITE_KEY": write_key,
            "LOAD_PROBES": json.dumps(probes),
            "LOAD_SAMPLES": str(samples_path),
        }
        locust_command = [
            LOCUST,
            "-f",
            str(ROOT / "bench" / "locustfile.py"),
            "--headless",
            "--host",
            f"http://{LOOPBACK}:{server.port}",
            "--users",
            str(arguments.clients),
            "--spawn-rate",
            str(arguments.clients),
            "--run-time",
            f"{arguments.seconds}s",
            "--stop-timeout",
            "10",
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        print(f"locust: {arguments.clients} clients for {arguments.seconds} s")
        loads = [load_average()]

        def our_pids() -> list[int]:
            return [*server.pids(), *postgres_backends_of(database_name(arguments.database_url))]

        def run_locust() -> None:
            process = subprocess.Popen(
                locust_command,
                cwd=ROOT,
                env=locust_environment,
                stdout=(log_directory / "locust.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            process.wait(timeout=arguments.seconds + 120)

        started = time.monotonic()
        busy = other_processes_busy(our_pids, run_locust)
        seconds = min(time.monotonic() - started, float(arguments.seconds))
        loads.append(load_average())
    finally:
        server.stop()
        for key in (read_key, write_key):
            manage(environment, "revoke_api_key", key[:11], capture=True)
        remove_write_scopes(arguments.database_url, environment=LOAD_ENVIRONMENT, vacuum=False)
    if not samples_path.exists():
        raise BenchError(f"locust wrote no samples: see {log_directory / 'locust.log'}")
    samples = json.loads(samples_path.read_text())
    text = report(
        samples, seconds=seconds, arguments=arguments, command=command, busy=busy, loads=loads
    )
    print(text)
    if arguments.output:
        arguments.output.write_text(text + "\n")
    errors = sum(1 for sample in samples if sample[2])
    print(f"{errors} errors (locust's log: {log_directory / 'locust.log'})")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"bench/load.py: {error}", file=sys.stderr)
        sys.exit(1)
