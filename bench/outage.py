"""A database outage under load: what clients see, how fast the app recovers, what is kept.

    .venv/bin/python bench/outage.py                     # the proxy cut (the safe default)
    .venv/bin/python bench/outage.py --restart-cluster   # restarts the local PostgreSQL!

It serves the app as production does (gunicorn, ``crm.settings.production``, persistent
connections, or ``--db-pool N``) from a database of its own (``crm_outage`` on 127.0.0.1:5432,
dropped and made again each run, seeded with ``--customers`` customers), runs a mixed
read/write load from ``--clients`` threads for ``--seconds`` (lists, searches, reads by id,
creates, updates: every client updates only the customers it created, one request at a time),
and in the middle takes the database away:

- by default by cutting a TCP proxy (bench/tcpproxy.py) that the app reaches PostgreSQL
  through: every connection closed and new ones refused for ``--down`` seconds, then
  restored. The PostgreSQL cluster is never touched (others may be using it);
- with ``--restart-cluster``, by restarting the local cluster itself
  (``pg_ctlcluster --skip-systemctl-redirect 15 main restart``): every session on it, of
  every database and every user, is cut. Run it only on a machine of your own.

Then it reports the answers by kind and status, the errors by kind (an HTTP status and its
envelope's code, or the connection error), the slowest answer during the outage, the time
to recover (from the database's return to the last failed request), and checks the database
afterwards: every create answered 201 is there, every update answered 200 left its value (or
a later, unanswered attempt's), and every write answered 2xx has its event in
customers_customerevent, found by the request's X-Request-ID. Exits 1 when an acknowledged
write or its event is missing, or an answer was neither 2xx nor 503.

It refuses to run with CI=true: it is run by hand, and its results go to docs/benchmarks.md.
"""

import argparse
import contextlib
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python bench/outage.py`: import the package from the checkout
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

import psycopg

from bench.common import LOOPBACK, BenchError
from bench.data import check_loopback_url, django_environment, ensure_database, manage
from bench.server import Server
from bench.system import load_average, machine
from bench.tcpproxy import TcpProxy

DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/crm_outage"
TENANT = "tenant_outage"
ENVIRONMENT = "env_outage_production"
RESTART_COMMAND = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"]
OK = "ok"


@dataclass
class Answer:
    kind: str
    started: float  # seconds since the load began
    seconds: float
    status: int | None  # None: no HTTP answer
    error: str  # OK, "HTTP 503 service_unavailable", "ConnectionResetError", ...


@dataclass
class Write:
    kind: str  # create or update
    customer_id: str | None
    request_id: str
    value: str  # the external id created, or the name set
    acknowledged: bool


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Connection:
    """One keep-alive connection; a failure closes it and is reported, never retried (a
    write sent again could be a second write)."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.port, self.headers = port, headers
        self.http: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, body: dict | None, request_id: str):
        headers = {**self.headers, "X-Request-ID": request_id}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.http is None:
            self.http = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30)
        try:
            self.http.request(method, path, body=data, headers=headers)
            response = self.http.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.http.close()
            self.http = None
            return None, type(error).__name__
        if response.getheader("Connection", "").lower() == "close":
            self.http.close()
            self.http = None
        return response.status, payload


def error_of(status: int | None, payload) -> str:
    if status is None:
        return payload  # the exception's name
    if 200 <= status < 300:
        return OK
    try:
        code = json.loads(payload)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "(not the envelope)"
    return f"HTTP {status} {code}"


def client_loop(number: int, port: int, key: str, deadline: float, began: float, load: Load):
    connection = Connection(port, {"x-api-key": key})
    mine: list[str] = []  # ids of the customers this client created
    sequence = 0
    kinds = ["list", "create", "get", "search", "update", "list_filtered", "create", "update"]
    while time.monotonic() < deadline:
        kind = kinds[sequence % len(kinds)]
        sequence += 1
        request_id = f"outage-{number}-{sequence}"
        method, path, body, value, customer_id = "GET", "/v1/customers?limit=20", None, "", None
        if kind == "list_filtered":
            path = "/v1/customers?status=published&sort=name&order=asc&limit=20"
        elif kind == "search":
            method, path, body = "POST", "/v1/customers/search", {"q": "outage", "limit": 10}
        elif kind == "get" and mine:
            path = f"/v1/customers/{mine[-1]}"
        elif kind == "create":
            value = f"outage_{number}_{sequence}"
            method, path = "POST", "/v1/customers"
            body = {"external_id": value, "name": f"Outage {number} {sequence}"}
        elif kind == "update" and mine:
            customer_id = mine[sequence % len(mine)]
            value = f"Renamed {number} {sequence}"
            method, path, body = "PATCH", f"/v1/customers/{customer_id}", {"name": value}
        elif kind in ("get", "update"):
            kind = "list"
        started = time.monotonic()
        status, payload = connection.send(method, path, body, request_id)
        seconds = time.monotonic() - started
        error = error_of(status, payload)
        if kind == "create" and error == OK:
            customer_id = json.loads(payload)["id"]
            mine.append(customer_id)
        with load.lock:
            load.answers.append(Answer(kind, started - began, seconds, status, error))
            if kind in ("create", "update"):
                load.writes.append(Write(kind, customer_id, request_id, value, error == OK))


def seed(environment: dict[str, str], count: int) -> str:
    manage(
        environment,
        "seed_customers",
        f"--count={count}",
        f"--tenant={TENANT}",
        f"--environment={ENVIRONMENT}",
        capture=True,
    )
    output = manage(
        environment,
        "create_api_key",
        f"--tenant={TENANT}",
        f"--environment={ENVIRONMENT}",
        "--name=outage",
        capture=True,
    )
    return output.strip().splitlines()[-1].strip()


@dataclass
class Verification:
    creates_acknowledged: int = 0
    updates_acknowledged: int = 0
    missing_creates: list[str] = field(default_factory=list)
    lost_updates: list[str] = field(default_factory=list)
    missing_events: list[str] = field(default_factory=list)
    unacknowledged_written: int = 0  # writes answered with an error that committed anyway


def verify(database_url: str, writes: list[Write]) -> Verification:
    result = Verification()
    with psycopg.connect(database_url, autocommit=True) as connection:
        customers = {
            row[0]: (row[1], row[2])
            for row in connection.execute(
                "SELECT id, external_id, name FROM customers_customer"
                " WHERE tenant_id = %s AND environment_id = %s",
                [TENANT, ENVIRONMENT],
            )
        }
        by_external_id = {external_id: id_ for id_, (external_id, _) in customers.items()}
        events = {
            row[0]
            for row in connection.execute(
                "SELECT request_id FROM customers_customerevent"
                " WHERE tenant_id = %s AND environment_id = %s AND request_id LIKE 'outage-%%'",
                [TENANT, ENVIRONMENT],
            )
        }
    # Updates per customer in the order they were sent (one client, one at a time).
    updates: dict[str, list[Write]] = defaultdict(list)
    for write in writes:
        if write.kind == "create":
            if write.acknowledged:
                result.creates_acknowledged += 1
                if write.value not in by_external_id:
                    result.missing_creates.append(write.value)
            elif write.value in by_external_id:
                result.unacknowledged_written += 1
        else:
            updates[write.customer_id].append(write)
            result.updates_acknowledged += write.acknowledged
        if write.acknowledged and write.request_id not in events:
            result.missing_events.append(write.request_id)
        if not write.acknowledged and write.request_id in events:
            result.unacknowledged_written += write.kind == "update"
    for customer_id, attempts in updates.items():
        acknowledged = [i for i, write in enumerate(attempts) if write.acknowledged]
        if not acknowledged:
            continue
        # The last acknowledged name, or that of a later attempt whose answer was lost.
        allowed = {write.value for write in attempts[acknowledged[-1] :]}
        name = customers.get(customer_id, (None, None))[1]
        if name not in allowed:
            result.lost_updates.append(f"{customer_id}: {name!r}, acknowledged {allowed}")
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def report(
    *, load: Load, outage: tuple[float, float], verification: Verification, arguments, command
) -> tuple[str, bool]:
    cut_at, back_at = outage
    answers = sorted(load.answers, key=lambda answer: answer.started)
    failures = [answer for answer in answers if answer.error != OK]
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for answer in answers:
        by_kind[answer.kind][answer.error] += 1
    errors = Counter(f"{answer.kind}: {answer.error}" for answer in failures)
    unexpected = [a for a in failures if not a.error.startswith("HTTP 503 service_unavailable")]
    during = [a.seconds for a in answers if cut_at <= a.started <= back_at]
    failed_after = [a for a in failures if a.started + a.seconds > back_at]
    last_failure_end = max((a.started + a.seconds for a in failures), default=None)
    recovered = 0.0 if last_failure_end is None else max(0.0, last_failure_end - back_at)
    ok_after = [a for a in answers if a.error == OK and a.started >= back_at]
    first_ok = min((a.started + a.seconds for a in ok_after), default=None)
    lines = [
        f"- **Command**: `{command}`",
        f"- **Machine**: {machine()}; load average before: {arguments.load_before}",
        f"- **Load**: {arguments.clients} clients for {arguments.seconds:.0f} s, each over one"
        " keep-alive connection, in turn: list, create, get, search, update, filtered list,"
        " create, update (a client updates only the customers it created);"
        f" {len(answers):,} requests, {arguments.customers:,} customers seeded;"
        f" server: {arguments.server_description}.",
        f"- **Outage** at {cut_at:.1f} s: {arguments.outage_description}; the database was back"
        f" at {back_at:.1f} s ({back_at - cut_at:.1f} s away).",
        "",
        "| kind | answered 2xx | errors |",
        "|---|---:|---|",
    ]
    for kind, counts in sorted(by_kind.items()):
        failed = ", ".join(f"{error}: {n}" for error, n in sorted(counts.items()) if error != OK)
        lines.append(f"| {kind} | {counts[OK]:,} | {failed or '—'} |")
    lines += [
        "",
        f"- **Errors by kind**: {', '.join(f'{k}: {n}' for k, n in sorted(errors.items()))}"
        if errors
        else "- **Errors**: none",
        f"- **Answers other than 2xx and 503**: {len(unexpected)}"
        + (f" ({', '.join(sorted({a.error for a in unexpected}))})" if unexpected else ""),
        f"- **Slowest answer while the database was away**: {max(during, default=0):.2f} s"
        f" (p50 {percentile(during, 0.5) * 1000:.0f} ms, {len(during)} requests)",
        f"- **Time to recover**: {recovered:.2f} s from the database's return to the end of the"
        f" last failed request ({len(failed_after)} request(s) failed after it);"
        + (f" first 2xx after it at +{first_ok - back_at:.2f} s" if first_ok is not None else ""),
        f"- **Writes acknowledged**: {verification.creates_acknowledged:,} creates (201),"
        f" {verification.updates_acknowledged:,} updates (200); missing afterwards:"
        f" {len(verification.missing_creates)} creates, {len(verification.lost_updates)} updates;"
        f" events missing for acknowledged writes: {len(verification.missing_events)};"
        f" writes answered with an error that committed anyway:"
        f" {verification.unacknowledged_written}",
    ]
    passed = not (
        verification.missing_creates
        or verification.lost_updates
        or verification.missing_events
        or unexpected
    )
    for label, items in (
        ("missing creates", verification.missing_creates),
        ("lost updates", verification.lost_updates),
        ("missing events", verification.missing_events),
    ):
        if items:
            lines.append(f"- **{label}** (first 10): {items[:10]}")
    return "\n".join(lines), passed


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/outage.py",
        description=(
            "Mixed read/write load against gunicorn with production settings while the"
            " database goes away in the middle: errors by kind, time to recover, and every"
            " acknowledged write (and its event) checked in the database afterwards. By"
            " default the database is taken away by cutting a TCP proxy in front of it (the"
            " PostgreSQL cluster is not touched). WARNING: --restart-cluster RESTARTS THE LOCAL"
            " POSTGRESQL CLUSTER (pg_ctlcluster 15 main restart), cutting every session of"
            " every database on it. Refuses to run with CI=true."
        ),
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and made")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--down", type=float, default=5.0, help="seconds the proxy stays cut")
    parser.add_argument("--customers", type=int, default=20_000, help="seeded before the load")
    parser.add_argument("--db-pool", type=int, default=0, help="DJANGO_DB_POOL_SIZE")
    parser.add_argument(
        "--restart-cluster",
        action="store_true",
        help="restart the local PostgreSQL 15 cluster 'main' instead of cutting the proxy",
    )
    parser.add_argument("--output", type=Path, help="also write the report (Markdown) here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    if os.environ.get("CI") == "true":
        print("bench/outage.py is run by hand, never in CI (CI=true): not running.")
        return 2
    command = "python bench/outage.py" + "".join(f" {arg}" for arg in argv)
    parts = check_loopback_url(arguments.database_url)
    arguments.load_before = load_average()
    ensure_database(arguments.database_url, reset=True)
    environment = django_environment(
        database_url=arguments.database_url,
        secret_key=secrets.token_urlsafe(50),
        db_pool_size=arguments.db_pool,
    )
    print("migrating and seeding")
    manage(environment, "migrate", "--no-input", "-v", "0")
    key = seed(environment, arguments.customers)

    with contextlib.ExitStack() as stack:
        proxy = None
        served_url = arguments.database_url
        if not arguments.restart_cluster:
            proxy = stack.enter_context(TcpProxy(parts.port or 5432))
            served_url = arguments.database_url.replace(
                f"{parts.hostname}:{parts.port or 5432}", f"{LOOPBACK}:{proxy.port}"
            )
        server_environment = {**environment, "DATABASE_URL": served_url}
        log_path = Path(f"/tmp/bench-outage-{os.getpid()}.log")
        server = Server(
            label="outage", environment=server_environment, log_path=log_path, ready_path="/healthz"
        )
        stack.callback(server.stop)
        server.start()
        arguments.server_description = (
            f"`gunicorn crm.wsgi -c gunicorn.conf.py` ({server.expected_workers()} workers x"
            f" {server.threads()} threads), "
            + (f"a pool of {arguments.db_pool} per process" if arguments.db_pool else "")
            + ("" if arguments.db_pool else "persistent connections (DJANGO_CONN_MAX_AGE=600)")
        )
        load = Load()
        began = time.monotonic()
        deadline = began + arguments.seconds
        threads = [
            threading.Thread(
                target=client_loop, args=(n, server.port, key, deadline, began, load), daemon=True
            )
            for n in range(arguments.clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(arguments.seconds / 3)
        cut_at = time.monotonic() - began
        if proxy is not None:
            print(f"cutting the proxy for {arguments.down:.1f} s")
            proxy.cut()
            time.sleep(arguments.down)
            proxy.restore()
            arguments.outage_description = (
                f"the TCP proxy between the app and PostgreSQL cut (every connection closed,"
                f" new ones refused) for {arguments.down:.0f} s; the cluster itself untouched"
            )
        else:
            print("restarting the PostgreSQL cluster: " + " ".join(RESTART_COMMAND))
            subprocess.run(RESTART_COMMAND, check=True)
            arguments.outage_description = "`" + " ".join(RESTART_COMMAND) + "`"
        back_at = time.monotonic() - began
        for thread in threads:
            thread.join()
        if server.process.poll() is not None:
            raise BenchError(f"gunicorn exited during the run:\n{server.log_tail()}")
    verification = verify(arguments.database_url, load.writes)
    text, passed = report(
        load=load,
        outage=(cut_at, back_at),
        verification=verification,
        arguments=arguments,
        command=command,
    )
    print(text)
    if arguments.output:
        arguments.output.write_text(text + "\n")
    print("PASSED: every acknowledged write is kept" if passed else "FAILED: see above")
    return 0 if passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"bench/outage.py: {error}", file=sys.stderr)
        sys.exit(1)
