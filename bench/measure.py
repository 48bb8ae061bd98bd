"""The measurements: the queries timed in turns, throughput, the CSV export, bulk writes."""

import contextlib
import dataclasses
import http.client
import math
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import (
    CONTRACT_COLUMNS,
    COUNTS_TABLE,
    CUSTOMER_TABLE,
    EVENTS_TABLE,
    LOOPBACK,
    PYTHON,
    ROOT,
    BenchError,
)
from bench.data import manage
from bench.queries import Floor, Query
from bench.server import Client, Server
from bench.system import (
    cpu_seconds,
    load_average,
    machine_busy_seconds,
    memory_kib,
    postgres_backends_of,
    postgres_cpu_seconds,
)

# -- Latency: every query, every way of answering it, in turns -------------------------------

APP = "app"  # the product served from this checkout
BEFORE = "before"  # the product served from the checkout given to --compare
FRAMEWORK_FLOOR = "framework"  # Django + DRF answering the app's bodies from memory
SQL_FLOOR = "sql"  # the query's raw SQL through psycopg


@dataclass
class Timing:
    rounds: list[list[float]]  # seconds, the samples of each round

    @property
    def samples(self) -> list[float]:
        return [sample for batch in self.rounds for sample in batch]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000


@dataclass
class Result:
    query: Query
    timings: dict[str, Timing]  # by Variant.name, for the variants that answer the query

    @property
    def app(self) -> Timing:
        return self.timings[APP]

    @property
    def floor(self) -> Timing:
        return self.timings[SQL_FLOOR]

    def ratio(self, numerator: str = APP, denominator: str = SQL_FLOOR) -> float | None:
        if numerator not in self.timings or denominator not in self.timings:
            return None
        below = self.timings[denominator].p50
        return self.timings[numerator].p50 / below if below else math.inf

    @property
    def met(self) -> bool | None:
        return None if self.query.target_ms is None else self.app.p50 <= self.query.target_ms

    def rounds_slower(self, variant: str = APP, than: str = BEFORE) -> tuple[int, int] | None:
        """(in how many rounds the variant's median was above the other's, rounds): the two
        took turns within each round, so a slow phase of the machine falls on both."""
        if variant not in self.timings or than not in self.timings:
            return None
        pairs = list(zip(self.timings[variant].rounds, self.timings[than].rounds, strict=True))
        slower = sum(statistics.median(mine) > statistics.median(other) for mine, other in pairs)
        return slower, len(pairs)


class Variant:
    """One way of answering the queries (a server, or the raw SQL), timed in turn with the
    others."""

    name: str

    def answers(self, query: Query) -> bool:
        return True

    def sample(self, query: Query, *, check: bool) -> float:
        raise NotImplementedError


class HttpVariant(Variant):
    """A server, over one keep-alive connection per kind of query ("api", "admin")."""

    def __init__(self, name: str, clients: dict[str, Client], *, old: bool = False):
        self.name = name
        self.clients = clients
        self.old = old  # the --compare checkout: it lacks the queries not ``in_before``

    def answers(self, query: Query) -> bool:
        return query.kind in self.clients and (query.in_before or not self.old)

    def fetch(self, query: Query) -> tuple[bytes, float]:
        status, body, seconds = self.clients[query.kind].get(query.path)
        if status != 200:
            raise BenchError(
                f"{self.name}: {query.name}: HTTP {status} for {query.path}: {body[:300]!r}"
            )
        return body, seconds

    def sample(self, query: Query, *, check: bool) -> float:
        body, seconds = self.fetch(query)
        if check:
            problem = query.check(body)
            if problem:
                raise BenchError(f"{self.name}: {query.name}: {problem}")
        return seconds

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def capture_bodies(variant: HttpVariant, queries: list[Query]) -> dict[str, bytes]:
    """What the variant answers to each query it answers (checked), by query name."""
    bodies = {}
    for query in queries:
        if variant.answers(query):
            body, _ = variant.fetch(query)
            problem = query.check(body)
            if problem:
                raise BenchError(f"{variant.name}: {query.name}: {problem}")
            bodies[query.name] = body
    return bodies


class SqlFloorVariant(Variant):
    """The query's raw SQL on one psycopg connection: the page, then the total if needed."""

    name = SQL_FLOOR

    def __init__(self, connection: psycopg.Connection):
        self.connection = connection

    def sample(self, query: Query, *, check: bool) -> float:
        return floor_sample(self.connection, query.floor)


def floor_sample(connection: psycopg.Connection, floor: Floor) -> float:
    started = time.perf_counter()
    rows = connection.execute(
        floor.page, (*floor.page_params, floor.limit, floor.offset)
    ).fetchall()
    # Like the app: a page that is neither empty nor full shows where the list ends.
    needs_total = not (rows and len(rows) < floor.limit) and (rows or floor.offset)
    if needs_total and floor.total is not None:
        connection.execute(floor.total, floor.total_params).fetchone()
    return time.perf_counter() - started


# Consecutive samples of one query in a round (as a client paging through a list would send
# them): enough for its code and data to be warm, few enough to spread it over the run.
ROUND_SAMPLES = 5


def measure_interleaved(
    queries: list[Query], *, variants: list[Variant], warmup: int, samples: int
) -> list[Result]:
    """Each query's warm-up requests, then rounds: in each, every query in turn, answered
    ROUND_SAMPLES times by each variant in turn, until each has ``samples``. A slow phase of
    this shared machine then lands on every query and every variant alike, instead of on
    whichever was being measured when it came; the variants' order rotates from round to
    round, so none always comes first after another query (colder caches)."""
    taken: dict[tuple[str, str], list[list[float]]] = {
        (query.name, variant.name): [] for query in queries for variant in variants
    }
    for query in queries:
        for variant in variants:
            if variant.answers(query):
                for number in range(warmup):
                    variant.sample(query, check=number == 0)
    done = rounds = 0
    while done < samples:
        batch = min(ROUND_SAMPLES, samples - done)
        turn = rounds % len(variants)
        ordered = variants[turn:] + variants[:turn]
        for query in queries:
            for variant in ordered:
                if variant.answers(query):
                    taken[query.name, variant.name].append(
                        [variant.sample(query, check=False) for _ in range(batch)]
                    )
        done += batch
        rounds += 1
    return [
        Result(
            query,
            {
                variant.name: Timing(taken[query.name, variant.name])
                for variant in variants
                if variant.answers(query)
            },
        )
        for query in queries
    ]


@dataclass
class Load:
    """What else the machine did while something was measured."""

    seconds: float
    busy_seconds: float  # CPU time of the whole machine, all cores
    own_seconds: float  # of the servers, this process and its PostgreSQL backends
    load_average_before: str
    load_average_after: str

    @property
    def others_cores(self) -> float:
        """Cores' worth of CPU used by everything else, on average."""
        return max(0.0, self.busy_seconds - self.own_seconds) / self.seconds


class LoadWatch:
    """Measures a Load around a block: ``with LoadWatch(pids, database) as watch: ...``
    then ``watch.load``. ``pids`` gives the servers' processes (called at the start and
    the end); PostgreSQL's backends are those connected to ``database``."""

    def __init__(self, pids: Callable[[], list[int]], database: str):
        self.pids = pids
        self.database = database
        self.load: Load | None = None

    def own_processes(self) -> list[int]:
        return [*self.pids(), *postgres_backends_of(self.database)]

    def __enter__(self) -> "LoadWatch":
        self.started = time.perf_counter()
        self.load_before = load_average()
        self.busy_before = machine_busy_seconds()
        self.own_before = {pid: cpu_seconds([pid]) for pid in self.own_processes()}
        self.self_before = time.process_time()
        return self

    def __exit__(self, *exc_info) -> None:
        busy = machine_busy_seconds() - self.busy_before
        own = time.process_time() - self.self_before
        for pid in self.own_processes():  # processes started meanwhile count from zero
            own += cpu_seconds([pid]) - self.own_before.get(pid, 0.0)
        self.load = Load(
            seconds=time.perf_counter() - self.started,
            busy_seconds=busy,
            own_seconds=own,
            load_average_before=self.load_before,
            load_average_after=load_average(),
        )


class LoadNote:
    """``with LoadNote(loads, name):`` notes the load averages at the block's start and end
    (``loads[name] = "0.52 0.61 0.70 → 1.10 0.75 0.72"``): the machine is shared."""

    def __init__(self, loads: dict[str, str], name: str):
        self.loads = loads
        self.name = name

    def __enter__(self) -> "LoadNote":
        self.before = load_average()
        return self

    def __exit__(self, *exc_info) -> None:
        self.loads[self.name] = f"{self.before} → {load_average()}"


# -- Throughput ------------------------------------------------------------------------------


@dataclass
class Throughput:
    connections: int
    seconds: float
    requests: int
    errors: int
    latencies: list[float]
    server_cpu_seconds: float  # gunicorn's processes (user + system) during the run
    client_cpu_seconds: float  # this process's, for the client threads
    runs: int = 1  # measurements summed in this one (see combined)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_ms_per_request(self) -> float:
        return self.server_cpu_seconds * 1000 / self.requests if self.requests else math.nan

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else math.nan


def combined(runs: list[Throughput]) -> Throughput:
    """Several runs of one server as one: their requests over their summed time."""
    return Throughput(
        connections=runs[0].connections,
        seconds=sum(run.seconds for run in runs),
        requests=sum(run.requests for run in runs),
        errors=sum(run.errors for run in runs),
        latencies=[latency for run in runs for latency in run.latencies],
        server_cpu_seconds=sum(run.server_cpu_seconds for run in runs),
        client_cpu_seconds=sum(run.client_cpu_seconds for run in runs),
        runs=sum(run.runs for run in runs),
    )


def measure_throughput(
    *, server: Server, headers: dict[str, str], path: str, connections: int, seconds: float
) -> Throughput:
    port = server.port
    server_pids = server.pids()
    start_together = threading.Barrier(connections + 1)
    stop_at: list[float] = []
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]

    def run() -> None:
        client = Client(port, headers)
        client.get(path)  # connect and warm this connection's worker thread
        mine, failed = [], 0
        start_together.wait()
        while time.perf_counter() < stop_at[0]:
            try:
                status, _, elapsed = client.get(path)
            except (OSError, http.client.HTTPException):
                failed += 1
                client.close()
                continue
            if status == 200:
                mine.append(elapsed)
            else:
                failed += 1
        client.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=run, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    stop_at.append(time.perf_counter() + 10**9)  # replaced below, once everyone is ready
    start_together.wait()  # every connection is open and warm
    server_cpu, client_cpu = cpu_seconds(server_pids), time.process_time()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return Throughput(
        connections,
        elapsed,
        len(latencies),
        errors[0],
        latencies,
        server_cpu_seconds=cpu_seconds(server_pids) - server_cpu,
        client_cpu_seconds=time.process_time() - client_cpu,
    )


# -- The CSV export --------------------------------------------------------------------------


@dataclass
class Export:
    seconds: float
    rows: int
    megabytes: float
    peak_rss_mib: float  # the highest VmRSS of a worker while the export streamed
    baseline_rss_mib: float  # that worker's VmRSS just before the export
    hwm_mib: float  # that worker's VmHWM (lifetime peak) afterwards

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def measure_export(*, server: Server, headers: dict[str, str], path: str) -> Export:
    workers = server.worker_pids()
    baseline = {pid: memory_kib(pid, "VmRSS") for pid in workers}
    peak = dict(baseline)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in workers:
                peak[pid] = max(peak[pid], memory_kib(pid, "VmRSS"))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=600)
    started = time.perf_counter()
    newlines = size = 0
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            raise BenchError(f"export: HTTP {response.status}: {response.read(300)!r}")
        while chunk := response.read(1 << 16):
            newlines += chunk.count(b"\n")
            size += len(chunk)
        seconds = time.perf_counter() - started
    finally:
        done.set()
        sampler.join()
        connection.close()
    busiest = max(workers, key=lambda pid: peak[pid] - baseline[pid])
    return Export(
        seconds=seconds,
        rows=newlines - (0 if "jsonl" in path else 1),  # a CSV's header
        megabytes=size / 1e6,
        peak_rss_mib=peak[busiest] / 1024,
        baseline_rss_mib=baseline[busiest] / 1024,
        hwm_mib=memory_kib(busiest, "VmHWM") / 1024,
    )


@dataclass
class CopyFloor:
    """PostgreSQL's own ``COPY (SELECT ...) TO STDOUT`` of an export's rows, read by psycopg."""

    seconds: float
    rows: int
    megabytes: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def copy_export_floor(database_url: str, *, tenant: str, environment: str) -> CopyFloor:
    """The scope's rows, the contract's columns in the export's order (the list's: newest
    first), as CSV from PostgreSQL's COPY: the floor of any export of them."""
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in CONTRACT_COLUMNS)
    statement = sql.SQL(
        "COPY (SELECT {} FROM {} WHERE tenant_id = %s AND environment_id = %s"
        " ORDER BY created_at DESC, id DESC) TO STDOUT (FORMAT csv, HEADER)"
    ).format(columns, sql.Identifier(CUSTOMER_TABLE))
    size = newlines = 0
    with psycopg.connect(database_url, autocommit=True) as connection:
        started = time.perf_counter()
        with connection.cursor().copy(statement, [tenant, environment]) as copy:
            for block in copy:
                size += len(block)
                newlines += bytes(block).count(b"\n")
        seconds = time.perf_counter() - started
    return CopyFloor(seconds=seconds, rows=newlines - 1, megabytes=size / 1e6)


# -- Bulk writes -----------------------------------------------------------------------------


@dataclass
class Writes:
    """Bulk writes into scratch scopes of the same database, removed afterwards."""

    seed_rows: int
    seed_seconds: float  # the command's own figure: generating and writing, one transaction
    import_rows: int
    import_seconds: float  # the command's own figure: reading, checking, writing, commit
    # The import command's own CPU time (Python: starting Django, reading, checking, sending).
    import_cpu_seconds: float
    # PostgreSQL's CPU time meanwhile (all its processes; None if they cannot be read).
    import_postgres_cpu_seconds: float | None
    # Events the import recorded (one per row since the event log; 0 before it).
    import_events: int
    cleanup_seconds: float
    import_peak_rss_mib: float = 0.0  # the import command's peak RSS (wait4's ru_maxrss)
    unindexed_copy_seconds: float | None = None  # the file COPYed into an unindexed table
    # The floor: the import's own rows (as the table holds them) COPYed by psycopg into the
    # customer table (its indexes, its million rows, constraints checked), rolled back.
    indexed_copy_seconds: float | None = None
    events_copy_seconds: float | None = None  # the import's events COPYed again (see below)
    seed_events: int = 0
    seed_peak_rss_mib: float = 0.0
    label: str = APP  # whose commands: APP or BEFORE
    customer_indexes: list[str] = field(default_factory=list)
    event_indexes: list[str] = field(default_factory=list)
    event_foreign_keys: int = 0
    loads: dict[str, str] = field(default_factory=dict)  # by step: LoadNote's

    @property
    def seed_rows_per_second(self) -> float:
        return self.seed_rows / self.seed_seconds

    @property
    def import_rows_per_second(self) -> float:
        return self.import_rows / self.import_seconds

    @property
    def indexed_copy_rows_per_second(self) -> float | None:
        if not self.indexed_copy_seconds:
            return None
        return self.import_rows / self.indexed_copy_seconds


WRITES_TENANT = "tenant_bench_writes"
SEED_ENVIRONMENT = "env_bench_writes_seed"
IMPORT_ENVIRONMENT = "env_bench_writes_import"


def command_seconds(output: str, pattern: str) -> float:
    match = re.search(pattern, output)
    if not match:
        raise BenchError(f"cannot read the duration in {output.strip()!r}")
    return float(match.group(1))


def table_exists(connection: psycopg.Connection, table: str) -> bool:
    return connection.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0]


def events_in(connection: psycopg.Connection, *, tenant: str, environment: str) -> int:
    if not table_exists(connection, EVENTS_TABLE):
        return 0
    return connection.execute(
        f"SELECT COUNT(*) FROM {EVENTS_TABLE} WHERE tenant_id = %s AND environment_id = %s",
        [tenant, environment],
    ).fetchone()[0]


WEBHOOK_TABLES = (  # child first: attempts, deliveries, endpoints (absent before webhooks)
    (
        "customers_webhookattempt",
        "delivery_id IN (SELECT d.id FROM customers_webhookdelivery d"
        " JOIN customers_webhookendpoint e ON e.id = d.endpoint_id WHERE e.tenant_id = %s)",
    ),
    (
        "customers_webhookdelivery",
        "endpoint_id IN (SELECT id FROM customers_webhookendpoint WHERE tenant_id = %s)",
    ),
    ("customers_webhookendpoint", "tenant_id = %s"),
)


def remove_write_scopes(
    database_url: str, *, environment: str | None = None, vacuum: bool = True
) -> float:
    """Delete the scratch scopes' webhooks, events, customers and counts (of one scratch
    environment, or all), then VACUUM: the data set is as before (one DELETE of the
    customers, so parent links inside the set need no order).

    Their events go first, as they reference the customers, and are vacuumed away before the
    customers are deleted: the foreign key's check for each deleted customer looks for its
    events, and without an index leading with `customer_id` (the event log had none before
    0c3684f) it scans the event table, dead rows included (deleting 110,000 customers took
    56 s with 10,000 dead events in it).
    """
    started = time.perf_counter()
    where, params = "tenant_id = %s", [WRITES_TENANT]
    if environment is not None:
        where, params = "tenant_id = %s AND environment_id = %s", [WRITES_TENANT, environment]
    with psycopg.connect(database_url, autocommit=True) as connection:
        if environment is None:
            for table, condition in WEBHOOK_TABLES:
                if table_exists(connection, table):
                    connection.execute(f"DELETE FROM {table} WHERE {condition}", [WRITES_TENANT])
        if table_exists(connection, EVENTS_TABLE):
            connection.execute(f"DELETE FROM {EVENTS_TABLE} WHERE {where}", params)
            if vacuum:
                connection.execute(f"VACUUM (ANALYZE) {EVENTS_TABLE}")
        connection.execute(f"DELETE FROM {CUSTOMER_TABLE} WHERE {where}", params)
        connection.execute(f"DELETE FROM {COUNTS_TABLE} WHERE {where}", params)
        if vacuum:
            connection.execute(f"VACUUM (ANALYZE) {CUSTOMER_TABLE}")
    return time.perf_counter() - started


@dataclass
class Command:
    """A command that ran to its end: its output and what it cost."""

    output: str
    seconds: float  # wall, from starting Python to its exit
    cpu_seconds: float  # its own user + system time
    peak_rss_mib: float  # ru_maxrss


def run_measured(environment: dict[str, str], args: list[str], *, cwd: Path = ROOT) -> Command:
    """``args`` (a command line) run to the end; its resources from wait4 (its own only)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        args, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(process.stdout.read()), daemon=True),
        threading.Thread(target=lambda: err_chunks.append(process.stderr.read()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    output = b"".join(out_chunks).decode(errors="replace")
    if process.returncode != 0:
        detail = b"".join(err_chunks).decode(errors="replace").strip()[-2000:]
        raise BenchError(f"`{' '.join(args[1:])}` failed ({process.returncode}) {detail}")
    return Command(
        output=output,
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,
    )


def manage_measured(environment: dict[str, str], *args: str, cwd: Path = ROOT) -> Command:
    return run_measured(environment, [PYTHON, "manage.py", *args], cwd=cwd)


def write_import_file(environment: dict[str, str], path: Path, *, rows: int) -> None:
    """A realistic CSV file of ``rows`` customers for the import scope (bench/importfile.py:
    every field filled, metadata, timestamps with offsets, ~10% with a parent)."""
    run_measured(
        environment,
        [
            PYTHON,
            str(ROOT / "bench" / "importfile.py"),
            str(path),
            f"--rows={rows}",
            f"--tenant={WRITES_TENANT}",
            f"--environment={IMPORT_ENVIRONMENT}",
        ],
    )


def import_command(
    environment: dict[str, str], import_file: Path, *, cwd: Path = ROOT, events: bool = True
) -> list[str]:
    """``manage.py import_customers`` of the checkout, or (``events=False``) the same through
    bench/import_without_events.py, which turns the import's event writing off."""
    arguments = [
        str(import_file),
        f"--tenant={WRITES_TENANT}",
        f"--environment={IMPORT_ENVIRONMENT}",
    ]
    if events:
        return [PYTHON, "manage.py", "import_customers", *arguments]
    return [PYTHON, str(ROOT / "bench" / "import_without_events.py"), str(cwd), *arguments]


def measure_writes(
    *,
    database_url: str,
    environment: dict[str, str],
    seed_rows: int,
    import_file: Path,
    import_rows: int,
    cwd: Path = ROOT,
    floors: bool = True,
    label: str = APP,
) -> Writes:
    """`import_customers` of ``import_file`` into a new scope, then `seed_customers --count
    seed_rows` into another, each into the full table (its indexes hold the million
    customers, and nothing else: each scratch scope is deleted before the next step), with
    the server stopped; the commands of the checkout at ``cwd``. ``floors``: also the file
    into a table without indexes, and the import's rows COPYed into the customer table
    itself (rolled back): the import's floor."""
    remove_write_scopes(database_url)  # what an interrupted earlier run may have left
    dump = None
    cleanup_seconds = 0.0
    loads: dict[str, str] = {}
    try:
        # The import needs the scope to exist: an empty seeding creates it.
        manage(
            environment,
            "seed_customers",
            "--count=0",
            f"--tenant={WRITES_TENANT}",
            f"--environment={IMPORT_ENVIRONMENT}",
            capture=True,
            cwd=cwd,
        )
        size = import_file.stat().st_size / 1e6
        print(f"import_customers of {import_rows:,} rows ({size:.0f} MB)")
        postgres_before = postgres_cpu_seconds()
        with LoadNote(loads, "import"):
            imported = run_measured(environment, import_command(environment, import_file), cwd=cwd)
        print(f"  {imported.output.strip()} (peak RSS {imported.peak_rss_mib:.0f} MiB)")
        import_seconds = command_seconds(imported.output, r" in ([0-9.]+)s \(")
        postgres_after = postgres_cpu_seconds()
        import_postgres_cpu_seconds = (
            postgres_after - postgres_before
            if postgres_before is not None and postgres_after is not None
            else None
        )
        with psycopg.connect(database_url, autocommit=True) as connection:
            import_events = events_in(
                connection, tenant=WRITES_TENANT, environment=IMPORT_ENVIRONMENT
            )
        print(f"  {import_events:,} events recorded by the import")
        unindexed_copy_seconds = indexed_copy_seconds = None
        if floors:
            unindexed_copy_seconds = copy_into_unindexed_table(database_url, import_file)
            print(f"  the file COPYed into a table without indexes: {unindexed_copy_seconds:.2f}s")
            dump = dump_scope_rows(
                database_url, tenant=WRITES_TENANT, environment=IMPORT_ENVIRONMENT
            )
        print("removing the import's scope (DELETE, VACUUM ANALYZE)")
        cleanup_seconds += remove_write_scopes(database_url, environment=IMPORT_ENVIRONMENT)
        if dump is not None:
            with LoadNote(loads, "COPY floor"):
                indexed_copy_seconds = copy_into_customer_table(database_url, dump)
            print(
                f"  the import's rows COPYed into the customer table (rolled back):"
                f" {indexed_copy_seconds:.1f}s ({import_rows / indexed_copy_seconds:,.0f} rows/s)"
            )
            with psycopg.connect(database_url, autocommit=True) as connection:
                connection.execute(f"VACUUM (ANALYZE) {CUSTOMER_TABLE}")

        print(f"seed_customers --count {seed_rows:,} into {WRITES_TENANT}/{SEED_ENVIRONMENT}")
        with LoadNote(loads, "seeding"):
            seeded = manage_measured(
                environment,
                "seed_customers",
                f"--count={seed_rows}",
                f"--tenant={WRITES_TENANT}",
                f"--environment={SEED_ENVIRONMENT}",
                "--seed=21",
                cwd=cwd,
            )
        print(f"  {seeded.output.strip()} (peak RSS {seeded.peak_rss_mib:.0f} MiB)")
        seed_seconds = command_seconds(seeded.output, r" in ([0-9.]+)s \(")
        with psycopg.connect(database_url, autocommit=True) as connection:
            seed_events = events_in(connection, tenant=WRITES_TENANT, environment=SEED_ENVIRONMENT)
        print(f"  {seed_events:,} events recorded by seeding")
    finally:
        if dump is not None:
            dump.unlink()
        print("removing the scratch scopes (DELETE, VACUUM ANALYZE)")
        cleanup_seconds += remove_write_scopes(database_url)
    return Writes(
        seed_rows=seed_rows,
        seed_seconds=seed_seconds,
        seed_events=seed_events,
        seed_peak_rss_mib=seeded.peak_rss_mib,
        import_rows=import_rows,
        import_seconds=import_seconds,
        import_cpu_seconds=imported.cpu_seconds,
        import_postgres_cpu_seconds=import_postgres_cpu_seconds,
        import_events=import_events,
        import_peak_rss_mib=imported.peak_rss_mib,
        unindexed_copy_seconds=unindexed_copy_seconds,
        indexed_copy_seconds=indexed_copy_seconds,
        cleanup_seconds=cleanup_seconds,
        label=label,
        customer_indexes=index_names(database_url, CUSTOMER_TABLE),
        event_indexes=index_names(database_url, EVENTS_TABLE),
        event_foreign_keys=foreign_key_count(database_url, EVENTS_TABLE),
        loads=loads,
    )


def dump_scope_rows(database_url: str, *, tenant: str, environment: str) -> Path:
    """A scope's customer rows as the table holds them (every column), as COPY's CSV, in a
    temporary file."""
    handle, name = tempfile.mkstemp(prefix="crm_bench_rows_", suffix=".csv")
    os.close(handle)
    path = Path(name)
    statement = sql.SQL(
        "COPY (SELECT * FROM {} WHERE tenant_id = %s AND environment_id = %s) TO STDOUT"
        " (FORMAT csv)"
    ).format(sql.Identifier(CUSTOMER_TABLE))
    with (
        psycopg.connect(database_url, autocommit=True) as connection,
        path.open("wb") as out,
        connection.cursor().copy(statement, [tenant, environment]) as copy,
    ):
        for block in copy:
            out.write(block)
    return path


def copy_into_customer_table(database_url: str, dump: Path) -> float:
    """The floor of an import into this schema: ``dump``'s rows (an import's, as the table
    held them) by one plain COPY into the customer table itself: its indexes, the million
    rows already in them, its constraints checked at once (SET CONSTRAINTS ALL IMMEDIATE),
    in a transaction rolled back."""
    with psycopg.connect(database_url) as connection, dump.open("rb") as rows:
        connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
        statement = sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(
            sql.Identifier(CUSTOMER_TABLE)
        )
        started = time.perf_counter()
        with connection.cursor().copy(statement) as copy:
            while block := rows.read(1 << 20):
                copy.write(block)
        seconds = time.perf_counter() - started
        connection.rollback()
    return seconds


def copy_events_again(database_url: str, *, tenant: str, environment: str) -> float | None:
    """PostgreSQL's time to write a scope's events as an import does: the same rows COPYed
    (binary) into a new table like theirs (its indexes, and its foreign keys checked at the
    end of the statement rather than at commit), in a transaction rolled back. None without
    an event table."""
    with psycopg.connect(database_url) as connection:
        if not table_exists(connection, EVENTS_TABLE):
            return None
        rows = bytearray()
        select = sql.SQL(
            "COPY (SELECT * FROM {} WHERE tenant_id = %s AND environment_id = %s)"
            " TO STDOUT (FORMAT BINARY)"
        ).format(sql.Identifier(EVENTS_TABLE))
        with connection.cursor().copy(select, [tenant, environment]) as copy:
            for block in copy:
                rows += block
        again = sql.Identifier("bench_events_again")
        connection.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                again, sql.Identifier(EVENTS_TABLE)
            )
        )
        keys = connection.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f'",
            [EVENTS_TABLE],
        ).fetchall()
        for (definition,) in keys:
            connection.execute(sql.SQL("ALTER TABLE {} ADD " + definition).format(again))
        connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
        started = time.perf_counter()
        with connection.cursor().copy(
            sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(again)
        ) as copy:
            copy.write(bytes(rows))
        seconds = time.perf_counter() - started
        connection.rollback()
    return seconds


def index_names(database_url: str, table: str) -> list[str]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [table]
        ).fetchall()
    return [name for (name,) in rows]


def foreign_key_count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as connection:
        if not table_exists(connection, table):
            return 0
        return connection.execute(
            "SELECT COUNT(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        ).fetchone()[0]


def copy_into_unindexed_table(database_url: str, path: Path) -> float:
    """PostgreSQL's floor for loading the file: COPY into a temporary table with the customer
    table's columns and none of its indexes, constraints or triggers."""
    with path.open("rb") as csv_file:
        header = csv_file.readline().decode().strip().split(",")
        # The export's header names are the table's column names.
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in header)
        with psycopg.connect(database_url) as connection:
            # The same columns and types; no indexes, constraints (NOT NULL included: an
            # empty cell is NULL here) or triggers.
            connection.execute(
                sql.SQL("CREATE TEMPORARY TABLE unindexed AS SELECT * FROM {} WITH NO DATA").format(
                    sql.Identifier(CUSTOMER_TABLE)
                )
            )
            started = time.perf_counter()
            statement = sql.SQL("COPY unindexed ({}) FROM STDIN (FORMAT csv)").format(columns)
            with connection.cursor().copy(statement) as copy:
                while block := csv_file.read(1 << 20):
                    copy.write(block)
            seconds = time.perf_counter() - started
            connection.rollback()
    return seconds


@contextlib.contextmanager
def import_file_of(environment: dict[str, str], *, rows: int):
    """A temporary CSV file of ``rows`` seeded customers, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="crm_bench_import_") as directory:
        path = Path(directory) / "customers.csv"
        write_import_file(environment, path, rows=rows)
        yield path


# -- Everything one run measured -------------------------------------------------------------


@dataclass
class Measurements:
    checkouts: dict[str, str]  # APP (and BEFORE): which code, described
    results: list[Result] = field(default_factory=list)
    load: Load | None = None  # what else the machine did while the queries were timed
    same_bodies: dict[str, bool] = field(default_factory=dict)  # API query: before == app?
    throughput: dict[str, Throughput] = field(default_factory=dict)
    export: dict[str, Export] = field(default_factory=dict)
    writes: dict[str, Writes] = field(default_factory=dict)
    copy_floor: CopyFloor | None = None  # PostgreSQL's COPY of the exported rows
    http_writes: Any = None  # bench.eventlog.WriteTimings: create/update, events on and off
    http_writes_load: Load | None = None
    webhooks: Any = None  # bench.eventlog.Webhooks
    import_events: Any = None  # bench.eventlog.ImportEvents
    loads: dict[str, str] = field(default_factory=dict)  # by measurement: LoadNote's

    def as_json(self) -> dict:
        """Every sample (ms) and figure, for comparing runs."""
        return {
            "checkouts": self.checkouts,
            "queries": {
                result.query.name: {
                    variant: [[round(s * 1000, 3) for s in batch] for batch in timing.rounds]
                    for variant, timing in result.timings.items()
                }
                for result in self.results
            },
            "load": dataclasses.asdict(self.load) if self.load else None,
            "throughput": {
                label: {
                    key: value
                    for key, value in dataclasses.asdict(each).items()
                    if key != "latencies"
                }
                for label, each in self.throughput.items()
            },
            "export": {label: dataclasses.asdict(each) for label, each in self.export.items()},
            "writes": {label: dataclasses.asdict(each) for label, each in self.writes.items()},
            **{
                name: dataclasses.asdict(value) if value is not None else None
                for name, value in (
                    ("copy_floor", self.copy_floor),
                    ("http_writes", self.http_writes),
                    ("http_writes_load", self.http_writes_load),
                    ("webhooks", self.webhooks),
                    ("import_events", self.import_events),
                )
            },
            "loads": self.loads,
        }
