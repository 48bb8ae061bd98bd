"""Read replicas, measured on this machine: the read queries through the router, served by
the streaming replica (bin/replica, 127.0.0.1:5433), beside the same queries with the
primary alone; then the replica's replay lag while a write load runs.

    .venv/bin/python bench/replica.py                   # prints the Markdown section
    .venv/bin/python bench/replica.py --append docs/benchmarks.md

It uses bench/run.py's database (``crm_bench``, 600,000 customers in the benchmark's scope;
run bench/run.py first if it is missing), which the replica holds too: it copies the whole
cluster. Two gunicorn servers run the production settings, taking turns query by query:
*primary alone* (DATABASE_URL) and *router* (the same, plus DATABASE_REPLICA_URLS: the list,
the search and the event log read the replica). Both use Redis (REDIS_URL), as production
with replicas should, for the rate limits and the read-your-writes markers.

The replica runs on the same machine, sharing its cores and disk with the primary: this
shows what the router costs (its marker lookup, its lag check once a second, a second
connection per thread), not a speed-up; a replica pays off on a machine of its own, taking
reads off the primary.

The write load: the hardening issue's load script, bench/load.py (locust, 16 clients mixing
every kind of list query with creates and updates in a scratch scope it deletes afterwards),
run for --seconds with DATABASE_REPLICA_URLS set, so that its server reads through the
router; (--simple-load: 16 clients creating and updating, without locust). Meanwhile the
replica's replay lag
is sampled every 50 ms, in time (``lag_estimate`` from the replica's position, as the
router's check once a second computes it) and in bytes (the primary's current WAL position
minus the replica's replayed one).
"""

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/replica.py`: import the package from the checkout
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

import psycopg
import redis

from bench.common import (
    BENCH_ENVIRONMENT,
    BENCH_TENANT,
    DEFAULT_DATABASE_URL,
    PYTHON,
    ROOT,
    BenchError,
)
from bench.data import django_environment, manage
from bench.eventlog import scratch_api_key
from bench.measure import remove_write_scopes
from bench.server import Client, Server
from bench.system import machine
from customers.db_router import POSITION_SQL, lag_estimate

REPLICA_URL = "postgres://root@127.0.0.1:5433/crm_bench"
REDIS_URL = "redis://127.0.0.1:6379/0"
SCRATCH_ENVIRONMENT = "env_bench_replica_writes"
WRITERS = 16
QUERIES = [
    ("default list (limit 50)", "/v1/customers?limit=50"),
    ("status=archived", "/v1/customers?status=archived"),
    ("sort=name&order=asc&limit=100", "/v1/customers?sort=name&order=asc&limit=100"),
    ("q= (common word)", "/v1/customers?q=cloud&limit=50"),
    ("created_at range", "/v1/customers?created_at[gte]=2024-01-01&created_at[lt]=2024-02-01"),
    ("events (limit 50)", "/v1/events?limit=50"),
    ("export, q= (CSV)", "/v1/customers/export?q=contoso21"),
]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def replica_reads(replica_url: str) -> int:
    """Rows the replica's database has handed out so far (pg_stat_database)."""
    with psycopg.connect(replica_url, autocommit=True) as connection:
        return connection.execute(
            "SELECT tup_returned + tup_fetched FROM pg_stat_database WHERE datname ="
            " current_database()"
        ).fetchone()[0]


def check_replica(database_url: str, replica_url: str) -> None:
    try:
        with psycopg.connect(replica_url, autocommit=True, connect_timeout=3) as connection:
            if not connection.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                raise BenchError(f"{replica_url} is not a replica")
    except psycopg.OperationalError as error:
        raise BenchError(f"no replica at {replica_url} ({error}); run bash bin/replica") from None
    with psycopg.connect(database_url, autocommit=True, connect_timeout=3):
        pass


def measure_reads(servers: dict[str, Server], api_key: str, *, rounds: int, per_turn: int):
    clients = {
        label: Client(server.port, {"Authorization": f"Bearer {api_key}"})
        for label, server in servers.items()
    }
    samples = {(name, label): [] for name, _ in QUERIES for label in servers}
    for _name, path in QUERIES:  # warm up, and every answer checked
        for label, client in clients.items():
            for _ in range(3):
                status, body, _seconds = client.get(path)
                if status != 200:
                    raise BenchError(f"{label}: {path} answered {status}: {body[:300]!r}")
    for number in range(rounds):
        order = list(clients.items())
        if number % 2:
            order.reverse()
        for name, path in QUERIES:
            for label, client in order:
                for _ in range(per_turn):
                    status, _body, seconds = client.get(path)
                    assert status == 200
                    samples[(name, label)].append(seconds)
    for client in clients.values():
        client.close()
    return samples


def write_load(port: int, api_key: str, *, seconds: float) -> dict:
    """WRITERS clients creating customers, then updating each one made, until ``seconds``."""
    deadline = time.monotonic() + seconds
    counts = {"create": 0, "update": 0, "errors": 0}
    lock = threading.Lock()
    run = secrets.token_hex(4)

    def writer(number: int) -> None:
        client = Client(port, {"Authorization": f"Bearer {api_key}"})
        made = 0
        while time.monotonic() < deadline:
            external_id = f"replica-{run}-{number}-{made}"
            body = json.dumps({"external_id": external_id, "name": f"Replica {made}"}).encode()
            status, answer, _ = client.send("POST", "/v1/customers", body)
            kind = "create"
            if status == 201:
                customer_id = json.loads(answer)["id"]
                patch = json.dumps({"name": f"Replica {made} (updated)"}).encode()
                status, _, _ = client.send("PATCH", f"/v1/customers/{customer_id}", patch)
                kind = "update"
                with lock:
                    counts["create"] += 1
            with lock:
                counts[kind if status in (200, 201) else "errors"] += 1
            made += 1
        client.close()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def hardening_load(arguments) -> dict:
    """bench/load.py for --seconds, its server reading through the router."""
    output = Path("/tmp/bench-replica-load.md")
    output.unlink(missing_ok=True)
    command = [PYTHON, str(ROOT / "bench" / "load.py"), "--seconds", str(int(arguments.seconds))]
    command += ["--database-url", arguments.database_url, "--output", str(output)]
    environment = {**os.environ, "DATABASE_REPLICA_URLS": arguments.replica_url}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    if not output.exists():
        raise BenchError(f"bench/load.py wrote no report:\n{completed.stderr[-2000:]}")
    return {"returncode": completed.returncode, "report": output.read_text()}


def sample_lag(database_url: str, replica_url: str, stop: threading.Event, into: list) -> None:
    """(seconds, bytes) every 50 ms; the seconds as the router's check would find them, its
    "last seen caught up" moment updated once a second (REPLICA_CHECK_SECONDS)."""
    checked_at = caught_up_at = float("-inf")
    with (
        psycopg.connect(database_url, autocommit=True) as primary,
        psycopg.connect(replica_url, autocommit=True) as replica,
    ):
        while not stop.is_set():
            (position,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
            (in_recovery, behind, replay_age) = replica.execute(POSITION_SQL).fetchone()
            (behind_bytes,) = replica.execute(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())", [str(position)]
            ).fetchone()
            now = time.monotonic()
            if now - checked_at >= 1.0:
                checked_at = now
                if not behind:
                    caught_up_at = now
            seconds = lag_estimate(
                in_recovery=in_recovery,
                behind=behind,
                replay_age=float(replay_age),
                since_caught_up=now - caught_up_at,
            )
            into.append((seconds, max(0.0, float(behind_bytes))))
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--replica-url", default=REPLICA_URL)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-turn", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0, help="the write load (30)")
    parser.add_argument(
        "--simple-load", action="store_true", help="16 plain HTTP writers, not bench/load.py"
    )
    parser.add_argument("--append", type=Path, help="append the section to this Markdown file")
    arguments = parser.parse_args(argv)
    check_replica(arguments.database_url, arguments.replica_url)
    redis_url = REDIS_URL
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        redis_url = ""
    secret = secrets.token_urlsafe(32)
    base = django_environment(database_url=arguments.database_url, secret_key=secret)
    base.update(GUNICORN_WORKERS="4", GUNICORN_THREADS="4")
    if redis_url:
        base["REDIS_URL"] = redis_url
    key_output = manage(
        base,
        "create_api_key",
        f"--tenant={BENCH_TENANT}",
        f"--environment={BENCH_ENVIRONMENT}",
        "--name=bench-replica",
        capture=True,
    )
    api_key = key_output.strip().splitlines()[-1].strip()
    scratch_key = scratch_api_key(base, SCRATCH_ENVIRONMENT)
    logs = Path("/tmp")
    servers = {
        "primary alone": Server(
            label="primary alone", environment=base, log_path=logs / "bench-replica-primary.log"
        ),
        "router": Server(
            label="router",
            environment={**base, "DATABASE_REPLICA_URLS": arguments.replica_url},
            log_path=logs / "bench-replica-router.log",
        ),
    }
    lag: list[tuple[float, float]] = []
    try:
        for server in servers.values():
            server.start()
        before = replica_reads(arguments.replica_url)
        samples = measure_reads(
            servers, api_key, rounds=arguments.rounds, per_turn=arguments.per_turn
        )
        replica_rows = replica_reads(arguments.replica_url) - before
        idle = []
        sample_lag(arguments.database_url, arguments.replica_url, _stopped_after(1.0), idle)
        stop = threading.Event()
        sampler = threading.Thread(
            target=sample_lag, args=(arguments.database_url, arguments.replica_url, stop, lag)
        )
        sampler.start()
        started = time.monotonic()
        try:
            if arguments.simple_load:
                counts = write_load(servers["router"].port, scratch_key, seconds=arguments.seconds)
            else:
                for server in servers.values():  # the load script serves with its own
                    server.stop()
                counts = hardening_load(arguments)
        finally:
            elapsed = time.monotonic() - started
            stop.set()
            sampler.join()
    finally:
        for server in servers.values():
            server.stop()
        with contextlib.suppress(Exception):
            manage(base, "revoke_api_key", api_key[:11], capture=True)
        with contextlib.suppress(Exception):
            remove_write_scopes(arguments.database_url, environment=SCRATCH_ENVIRONMENT)
    section = report(
        samples=samples,
        replica_rows=replica_rows,
        idle=idle,
        lag=lag,
        counts=counts,
        elapsed=elapsed,
        arguments=arguments,
        redis_url=redis_url,
    )
    print(section)
    if arguments.append:
        with arguments.append.open("a") as page:
            page.write("\n" + section)
    return 0


def _stopped_after(seconds: float) -> threading.Event:
    event = threading.Event()
    threading.Timer(seconds, event.set).start()
    return event


def report(*, samples, replica_rows, idle, lag, counts, elapsed, arguments, redis_url) -> str:
    lines = [
        "## Read replicas",
        "",
        f"Produced by `python bench/replica.py` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
        " UTC"
        f" ({machine()}). The primary (127.0.0.1:5432) and its streaming replica"
        " (127.0.0.1:5433, made by `bin/replica`: `pg_basebackup -R`, hot standby) run on"
        " **the same machine**, so this measures what the router costs, not what a replica"
        " saves: on a machine of its own a replica takes these reads off the primary.",
        "",
        f"Two gunicorn servers (production settings, 4 workers x 4 threads,"
        f" {'Redis' if redis_url else 'no Redis'} for the rate limits and the read-your-writes"
        " markers), taking turns query by query against `crm_bench` (600,000 customers in the"
        " key's scope): *primary alone* (`DATABASE_URL`), and *router* (the same plus"
        " `DATABASE_REPLICA_URLS`: the list, the search, the export and the event log read"
        f" the replica). {arguments.rounds} rounds of {arguments.per_turn} requests per query"
        " and server, over keep-alive connections, after 3 warm-ups.",
        "",
        "| query | primary alone p50 | p95 | router (replica) p50 | p95 | difference p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, _ in QUERIES:
        alone = samples[(name, "primary alone")]
        routed = samples[(name, "router")]
        a50, r50 = statistics.median(alone) * 1000, statistics.median(routed) * 1000
        lines.append(
            f"| {name} | {a50:.1f} ms | {percentile(alone, 0.95) * 1000:.1f} ms |"
            f" {r50:.1f} ms | {percentile(routed, 0.95) * 1000:.1f} ms |"
            f" {r50 - a50:+.1f} ms ({(r50 / a50 - 1) * 100:+.0f}%) |"
        )
    lines += [
        "",
        f"The replica's database handed out {replica_rows:,} rows meanwhile (pg_stat_database):"
        " the router's reads were served there.",
        "",
    ]
    seconds = [value for value, _ in lag]
    bytes_behind = [value for _, value in lag]
    idle_seconds = [value for value, _ in idle] or [0.0]
    if "report" in counts:
        load = (
            f"the hardening issue's load script (`bench/load.py --seconds"
            f" {int(arguments.seconds)}`: locust, 16 clients mixing every kind of list query with"
            " creates and updates in a scratch scope), its server started with"
            " `DATABASE_REPLICA_URLS`, so that its reads went through the router"
            f" ({'no errors' if counts['returncode'] == 0 else 'ERRORS: see its report'});"
            f" it ran {elapsed:.0f} s with its start and clean-up"
        )
    else:
        writes = counts["create"] + counts["update"]
        load = (
            f"{WRITERS} clients creating customers and updating each (POST then PATCH, each with"
            f" its event, into a scratch scope) through the router's server for {elapsed:.0f} s:"
            f" {writes:,} writes ({writes / elapsed:,.0f}/s), {counts['errors']} errors"
        )
    lines += [
        f"**Replay lag under a write load**: {load}. The replica's lag, sampled every 50 ms"
        f" ({len(lag)} samples): in time (as the router's check once a second computes it,"
        " against `REPLICA_MAX_LAG_SECONDS`)"
        f" p50 {statistics.median(seconds) * 1000:.0f} ms, p95"
        f" {percentile(seconds, 0.95) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms; in"
        f" WAL not yet replayed p50 {statistics.median(bytes_behind) / 1024:.0f} KiB, p95"
        f" {percentile(bytes_behind, 0.95) / 1024:.0f} KiB, max"
        f" {max(bytes_behind) / 1024:.0f} KiB. Idle, before the load: max"
        f" {max(idle_seconds) * 1000:.0f} ms."
        f" {len([v for v in seconds if v > 2.0])} samples were over the default limit (2 s),"
        f" {len([v for v in seconds if v > 5.0])} over the read-your-writes window (5 s)."
        " Other clients of the same cluster (other databases, other agents' test runs)"
        " write meanwhile too, and their WAL is replayed in the same stream.",
        "",
    ]
    if "report" in counts:
        lines += ["The load script's own report (its server reading through the router):", ""]
        lines += [counts["report"].strip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"bench/replica.py: {error}", file=sys.stderr)
        sys.exit(1)
