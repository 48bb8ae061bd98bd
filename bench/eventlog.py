"""The event log's cost and the webhooks' speed (issue "Events and webhooks", its Speed part).

- ``measure_http_writes``: create (POST /v1/customers) and update (PATCH /v1/customers/{id})
  over HTTP, from this checkout's app as production serves it (events on) and from the same
  app with ``customers.services.customer_event_record`` turned into a no-op
  (bench/eventsoff: events off), the two servers taking turns, into a scratch scope.
- ``measure_import_events``: the same import file imported with its events and without them
  (bench/import_without_events.py), in turns, into a scratch scope deleted between runs.
- ``measure_webhooks``: ``manage.py deliver_webhooks`` (one process, then two) draining a
  backlog of deliveries to a receiver on 127.0.0.1 that answers 204 at once; then one worker
  under a steady stream of creates over HTTP, each delivery's lag from the create's commit
  (its HTTP answer) to its arrival.
"""

import contextlib
import http.server
import json
import os
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.common import PYTHON, ROOT, BenchError
from bench.data import manage
from bench.measure import (
    IMPORT_ENVIRONMENT,
    WRITES_TENANT,
    command_seconds,
    import_command,
    remove_write_scopes,
    run_measured,
)
from bench.server import Client, Server

HTTP_ENVIRONMENT = "env_bench_writes_http"
HOOKS_ENVIRONMENT = "env_bench_writes_hooks"
EVENTS_ON = "events on"
EVENTS_OFF = "events off"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def scratch_api_key(environment: dict[str, str], scratch_environment: str) -> str:
    output = manage(
        environment,
        "create_api_key",
        f"--tenant={WRITES_TENANT}",
        f"--environment={scratch_environment}",
        "--name=bench-writes",
        capture=True,
    )
    return output.strip().splitlines()[-1].strip()


# -- Create and update over HTTP, events on and off -------------------------------------------


@dataclass
class WriteTimings:
    create: dict[str, list[float]] = field(default_factory=dict)  # by server: seconds
    update: dict[str, list[float]] = field(default_factory=dict)

    def p50(self, kind: str, server: str) -> float:
        return statistics.median(getattr(self, kind)[server]) * 1000

    def p95(self, kind: str, server: str) -> float:
        return percentile(getattr(self, kind)[server], 0.95) * 1000

    def slower(self, kind: str) -> float:
        return self.p50(kind, EVENTS_ON) / self.p50(kind, EVENTS_OFF) - 1


def customer_body(number: int, label: str) -> bytes:
    return json.dumps(
        {
            "external_id": f"bench_http_{label.replace(' ', '_')}_{number:06d}",
            "name": f"Bench Writes {number} GmbH",
            "email": f"billing@bench{number}.example.com",
            "address_line1": f"{number % 900 + 1} Market St",
            "address_city": "Berlin",
            "address_postal_code": "10115",
            "address_country": "DE",
            "metadata": {"plan_tier": "growth", "region": "eu-central"},
        }
    ).encode()


def measure_http_writes(
    *, servers: dict[str, Server], api_key: str, samples: int, warmup: int = 10, batch: int = 5
) -> WriteTimings:
    """Rounds: each server in turn (the order alternating) creates ``batch`` customers, then
    updates ``batch`` of those it created (a new name each time: a real change, an event)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    clients = {label: Client(server.port, headers) for label, server in servers.items()}
    timings = WriteTimings(
        create={label: [] for label in servers}, update={label: [] for label in servers}
    )
    created: dict[str, list[str]] = {label: [] for label in servers}
    numbers = dict.fromkeys(servers, 0)
    updates = dict.fromkeys(servers, 0)

    def create(label: str) -> float:
        numbers[label] += 1
        status, body, seconds = clients[label].send(
            "POST", "/v1/customers", customer_body(numbers[label], label)
        )
        if status != 201:
            raise BenchError(f"{label}: POST /v1/customers: HTTP {status}: {body[:300]!r}")
        created[label].append(json.loads(body)["id"])
        return seconds

    def update(label: str) -> float:
        updates[label] += 1
        customer_id = created[label][updates[label] % len(created[label])]
        change = json.dumps({"name": f"Bench Renamed {updates[label]} AG"}).encode()
        status, body, seconds = clients[label].send("PATCH", f"/v1/customers/{customer_id}", change)
        if status != 200:
            raise BenchError(f"{label}: PATCH: HTTP {status}: {body[:300]!r}")
        return seconds

    try:
        for label in servers:
            for _ in range(warmup):
                create(label)
                update(label)
        labels = list(servers)
        rounds = 0
        while len(timings.create[labels[0]]) < samples:
            for label in labels if rounds % 2 == 0 else labels[::-1]:
                timings.create[label] += [create(label) for _ in range(batch)]
                timings.update[label] += [update(label) for _ in range(batch)]
            rounds += 1
    finally:
        for client in clients.values():
            client.close()
    return timings


# -- The import with and without its events ---------------------------------------------------


@dataclass
class ImportEvents:
    rows: int
    seconds: dict[str, list[float]]  # by EVENTS_ON / EVENTS_OFF: the command's own figures
    seed_rows: int = 0
    seed_seconds: dict[str, list[float]] = field(default_factory=dict)  # the same, seeding

    def seed_rows_per_second(self, label: str) -> float:
        return self.seed_rows / statistics.median(self.seed_seconds[label])

    def rows_per_second(self, label: str) -> float:
        return self.rows / statistics.median(self.seconds[label])

    @property
    def ratio(self) -> float:
        return self.rows_per_second(EVENTS_ON) / self.rows_per_second(EVENTS_OFF)


def measure_import_events(
    *, database_url: str, environment: dict[str, str], import_file: Path, rows: int
) -> ImportEvents:
    """The file imported four times into an empty scratch scope, on, off, off, on."""
    seconds: dict[str, list[float]] = {EVENTS_ON: [], EVENTS_OFF: []}
    for label in (EVENTS_ON, EVENTS_OFF, EVENTS_OFF, EVENTS_ON):
        remove_write_scopes(database_url)
        manage(
            environment,
            "seed_customers",
            "--count=0",
            f"--tenant={WRITES_TENANT}",
            f"--environment={IMPORT_ENVIRONMENT}",
            capture=True,
        )
        command = import_command(environment, import_file, events=label == EVENTS_ON)
        done = run_measured(environment, command)
        seconds[label].append(command_seconds(done.output, r" in ([0-9.]+)s \("))
        print(f"  import, {label}: {done.output.strip()}")
    seed_rows = 200_000 if rows >= 100_000 else 20_000  # 2 blocks: both writers write
    seed_seconds: dict[str, list[float]] = {EVENTS_ON: [], EVENTS_OFF: []}
    for label in (EVENTS_ON, EVENTS_OFF, EVENTS_OFF, EVENTS_ON):
        remove_write_scopes(database_url)
        arguments = [
            f"--count={seed_rows}",
            f"--tenant={WRITES_TENANT}",
            f"--environment={IMPORT_ENVIRONMENT}",
            "--seed=23",
        ]
        if label == EVENTS_ON:
            command = [PYTHON, "manage.py", "seed_customers", *arguments]
        else:
            command = [
                PYTHON,
                str(ROOT / "bench" / "seed_without_events.py"),
                str(ROOT),
                *arguments,
            ]
        done = run_measured(environment, command)
        seed_seconds[label].append(command_seconds(done.output, r" in ([0-9.]+)s \("))
        print(f"  seeding, {label}: {done.output.strip()}")
    remove_write_scopes(database_url)
    return ImportEvents(rows=rows, seconds=seconds, seed_rows=seed_rows, seed_seconds=seed_seconds)


# -- Webhooks ------------------------------------------------------------------------------------


class ReceiverServer(http.server.ThreadingHTTPServer):
    # A real server's listen backlog: socketserver's default (5) resets connections when
    # workers sending several deliveries at a time connect at once.
    request_queue_size = 128


class Receiver:
    """A webhook receiver on 127.0.0.1: answers 204 (after ``delay_seconds``, at once by
    default); notes when each delivery came."""

    def __init__(self, delay_seconds: float = 0.0):
        self.arrivals: list[tuple[float, str]] = []  # (perf_counter, the customer's id)
        self.delay_seconds = delay_seconds
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)  # a receiver's own work before its answer
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                arrived = time.perf_counter()
                try:
                    customer_id = json.loads(body)["data"]["object"]["id"]
                except (ValueError, KeyError, TypeError):
                    customer_id = ""
                with receiver.lock:
                    receiver.arrivals.append((arrived, customer_id))

            def log_message(self, format, *args):
                pass

        self.server = ReceiverServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()


@dataclass
class Drain:
    workers: int
    deliveries: int
    seconds: float  # from the workers' start to the last arrival
    concurrency: int | None = None  # each worker's --concurrency (None: the default)

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds


@dataclass
class Webhooks:
    drains: list[Drain]
    lag_rate: float  # creates per second sent while one worker delivered
    lags: list[float]  # seconds, create's answer -> the delivery's arrival
    lag_deliveries_per_second: float
    poll_seconds: float

    @property
    def lag_p50(self) -> float:
        return statistics.median(self.lags) * 1000

    @property
    def lag_p95(self) -> float:
        return percentile(self.lags, 0.95) * 1000


def start_workers(
    environment: dict[str, str], count: int, poll_seconds: float, concurrency: int | None = None
):
    concurrency_args = [] if concurrency is None else [f"--concurrency={concurrency}"]
    return [
        subprocess.Popen(
            [
                PYTHON,
                "manage.py",
                "deliver_webhooks",
                f"--poll-seconds={poll_seconds}",
                *concurrency_args,
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]


def stop_workers(workers) -> None:
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)  # its own group, by its id
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


def pending_deliveries(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(
            "SELECT COUNT(*) FROM customers_webhookdelivery d JOIN customers_webhookendpoint e"
            " ON e.id = d.endpoint_id WHERE e.tenant_id = %s AND d.status = 'pending'",
            [WRITES_TENANT],
        ).fetchone()[0]


def with_hooks_settings(environment: dict[str, str]) -> dict[str, str]:
    """``environment`` with the settings the workers and the endpoint's creation run with:
    production's, private URLs allowed (the receiver listens on 127.0.0.1)."""
    return {**environment, "DJANGO_SETTINGS_MODULE": "bench.hooks_settings"}


def endpoint_to(hooks_environment: dict[str, str], receiver: Receiver) -> None:
    """A webhook endpoint of the scratch scope HOOKS_ENVIRONMENT, for every event, that
    points at ``receiver`` (``hooks_environment``: settings that allow private URLs)."""
    manage(
        hooks_environment,
        "shell",
        "-c",
        "from customers.services import environment_ensure\n"
        "from customers.webhooks import webhook_endpoint_create\n"
        f"scope = environment_ensure(tenant_id={WRITES_TENANT!r},"
        f" environment_id={HOOKS_ENVIRONMENT!r}).scope\n"
        "webhook_endpoint_create(scope=scope, data={'url':"
        f" 'http://127.0.0.1:{receiver.port}/hooks', 'enabled_events': ['*']}})",
        capture=True,
    )


def drain_backlog(
    *,
    database_url: str,
    environment: dict[str, str],
    receiver: Receiver,
    backlog: int,
    seed: int,
    workers: int,
    poll_seconds: float = 1.0,
    concurrency: int | None = None,
) -> Drain:
    """``backlog`` customers seeded in HOOKS_ENVIRONMENT (their events and deliveries, in
    bulk), then ``workers`` deliver_webhooks processes started and timed until the last
    delivery arrives at ``receiver``."""
    hooks_environment = with_hooks_settings(environment)
    manage(
        environment,
        "seed_customers",
        f"--count={backlog}",
        f"--tenant={WRITES_TENANT}",
        f"--environment={HOOKS_ENVIRONMENT}",
        f"--seed={seed}",
        capture=True,
    )
    due = pending_deliveries(database_url)
    if due != backlog:
        raise BenchError(f"webhooks: {due:,} deliveries due, not {backlog:,}")
    receiver.reset()
    started = time.perf_counter()
    processes = start_workers(hooks_environment, workers, poll_seconds, concurrency)
    try:
        deadline = started + 900
        while receiver.count() < backlog and time.perf_counter() < deadline:
            time.sleep(0.05)
    finally:
        stop_workers(processes)
    arrived = receiver.count()
    last = max(at for at, _ in receiver.arrivals)
    drained = Drain(
        workers=workers, deliveries=arrived, seconds=last - started, concurrency=concurrency
    )
    print(
        f"  {workers} worker(s), concurrency {concurrency or 'default'}:"
        f" {arrived:,} deliveries in {drained.seconds:.1f}s ({drained.per_second:,.0f}/s)"
    )
    if arrived < backlog or pending_deliveries(database_url):
        raise BenchError("webhooks: deliveries left pending after the drain")
    return drained


def measure_webhooks(
    *,
    database_url: str,
    environment: dict[str, str],
    app: Server,
    backlog: int,
    lag_seconds: float,
    lag_connections: int = 2,
    lag_rate: float = 100.0,
    poll_seconds: float = 1.0,
) -> Webhooks:
    """With the app serving (events on): an endpoint of a scratch scope pointing at the
    receiver; ``backlog`` customers seeded there (their events and deliveries, in bulk), then
    drained by one worker, and again by two; then a stream of creates over HTTP for
    ``lag_seconds`` while one worker runs, each delivery's lag measured: ``lag_rate`` creates
    a second in all (paced, below what one worker delivers: a worker that falls behind would
    make the lag the queue's growth), from ``lag_connections`` connections."""
    hooks_environment = with_hooks_settings(environment)
    drains = []
    with Receiver() as receiver:
        endpoint_to(hooks_environment, receiver)
        for seed, workers in ((31, 1), (32, 2)):
            drains.append(
                drain_backlog(
                    database_url=database_url,
                    environment=environment,
                    receiver=receiver,
                    backlog=backlog,
                    seed=seed,
                    workers=workers,
                    poll_seconds=poll_seconds,
                )
            )

        # The lag: creates over HTTP (their commit is before their answer) while one worker
        # delivers; each arrival matched to its create's answer by the customer's id.
        receiver.reset()
        api_key = scratch_api_key(environment, HOOKS_ENVIRONMENT)
        answered: dict[str, float] = {}
        lock = threading.Lock()
        stop_at = time.perf_counter() + 3600

        def produce(connection_number: int) -> None:
            client = Client(app.port, {"Authorization": f"Bearer {api_key}"})
            number = 0
            interval = lag_connections / lag_rate
            next_at = time.perf_counter()
            try:
                while time.perf_counter() < stop_at:
                    next_at += interval
                    pause = next_at - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    number += 1
                    status, body, _ = client.send(
                        "POST",
                        "/v1/customers",
                        customer_body(number, f"hooks {connection_number}"),
                    )
                    if status != 201:
                        raise BenchError(f"webhooks: POST: HTTP {status}: {body[:300]!r}")
                    with lock:
                        answered[json.loads(body)["id"]] = time.perf_counter()
            finally:
                client.close()

        processes = start_workers(hooks_environment, 1, poll_seconds)
        try:
            time.sleep(2)  # the worker has started (Django set up) and found nothing due
            threads = [
                threading.Thread(target=produce, args=(n,), daemon=True)
                for n in range(lag_connections)
            ]
            started = time.perf_counter()
            stop_at = started + lag_seconds
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            produced = time.perf_counter() - started
            deadline = time.perf_counter() + 120
            while receiver.count() < len(answered) and time.perf_counter() < deadline:
                time.sleep(0.05)
        finally:
            stop_workers(processes)
            with contextlib.suppress(BenchError):
                manage(environment, "revoke_api_key", api_key[:11], capture=True)
        lags = [at - answered[customer_id] for at, customer_id in receiver.arrivals]
        arrivals = sorted(at for at, _ in receiver.arrivals)
        delivering = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return Webhooks(
        drains=drains,
        lag_rate=len(answered) / produced,
        lags=lags,
        lag_deliveries_per_second=len(arrivals) / delivering if delivering else 0.0,
        poll_seconds=poll_seconds,
    )
