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
4. For each query, warm-up requests; then rounds of a few requests per query, over one
   keep-alive connection for the API and one for the admin (p50, p95 per query), each
   followed by as many runs of the same query as raw SQL through psycopg (the page query,
   plus the total's query when the app needs one): the floor, and the ratio app / floor.
   Taking turns puts a slow phase of the machine on every query alike.
5. Throughput of the default list with 8 concurrent keep-alive connections.
6. The CSV export of the whole 600k scope: time, rows/s, and the workers' peak RSS.
7. With the server stopped, bulk writes into scratch scopes of the same table:
   ``seed_customers --count 1000000``, and ``import_customers`` of a 100k-row file written
   by ``seed_customers --csv``; then the scratch scopes are deleted (``--no-writes`` skips).
8. Prints the results and writes them to ``docs/benchmarks.md`` (full runs; ``--output``).

The server it started is stopped on every exit path. All traffic goes to 127.0.0.1.
"""

import argparse
import contextlib
import http.client
import http.cookiejar
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
LOOPBACK = "127.0.0.1"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/crm_bench"
QUICK_DATABASE_URL = "postgres://root@127.0.0.1:5432/crm_bench_quick"

BENCH_TENANT = "tenant_bench"
BENCH_ENVIRONMENT = "env_bench_production"
STAFF_USERNAME = "bench_operator"
CUSTOMER_TABLE = "customers_customer"
SEED_TARGET_SECONDS = 60  # for 1,000,000 customers
IMPORT_TARGET_ROWS = 50_000  # rows/s
COUNTS_TABLE = "customers_customerstatuscount"
# The contract's 17 fields: what a lean implementation of the list would read.
CONTRACT_COLUMNS = (
    "id",
    "external_id",
    "name",
    "email",
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
    "address_country",
    "parent_customer_id",
    "metadata",
    "environment_id",
    "tenant_id",
    "status",
    "created_at",
    "updated_at",
)


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# -- The data set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopePlan:
    tenant: str
    environment: str
    count: int
    seed: int


def data_plan(*, quick: bool) -> list[ScopePlan]:
    main, other = (30_000, 5_000) if quick else (600_000, 100_000)
    return [
        ScopePlan(BENCH_TENANT, BENCH_ENVIRONMENT, main, 1),
        ScopePlan(BENCH_TENANT, "env_bench_sandbox", other, 2),
        ScopePlan("tenant_other_1", "env_other_1_production", other, 3),
        ScopePlan("tenant_other_2", "env_other_2_production", other, 4),
        ScopePlan("tenant_other_3", "env_other_3_production", other, 5),
    ]


# -- Database setup --------------------------------------------------------------------------


def check_loopback_url(database_url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql") or parts.hostname not in LOOPBACK_HOSTS:
        raise BenchError(f"the database must be PostgreSQL on the loopback: {database_url!r}")
    if not parts.path.strip("/"):
        raise BenchError(f"the database URL names no database: {database_url!r}")
    return parts


def ensure_database(database_url: str, *, reset: bool) -> None:
    parts = check_loopback_url(database_url)
    name = parts.path.strip("/")
    maintenance_url = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        if reset:
            print(f"dropping database {name}")
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            print(f"creating database {name}")
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def django_environment(
    *, database_url: str, secret_key: str, db_pool_size: int = 0
) -> dict[str, str]:
    """What the production server and the management commands run with."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "GUNICORN_")) and key != "DATABASE_URL"
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="crm.settings.production",
        DJANGO_SECRET_KEY=secret_key,
        DATABASE_URL=database_url,
        # Persistent connections, as production should run (base.py's default is 60 s), or
        # with --db-pool a pool per process (which replaces them).
        DJANGO_CONN_MAX_AGE="600",
        DJANGO_DB_POOL_SIZE=str(db_pool_size),
        # Plain HTTP on the loopback: the cookie jar would not send back Secure cookies.
        DJANGO_SECURE_COOKIES="false",
        DJANGO_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return environment


def manage(environment: dict[str, str], *args: str, capture: bool = False) -> str:
    command = [PYTHON, "manage.py", *args]
    completed = subprocess.run(
        command, cwd=ROOT, env=environment, text=True, capture_output=capture, check=False
    )
    if completed.returncode != 0:
        detail = (completed.stderr or "").strip()[-2000:] if capture else ""
        raise BenchError(f"`manage.py {' '.join(args)}` failed ({completed.returncode}) {detail}")
    return completed.stdout if capture else ""


def scope_counts(connection: psycopg.Connection) -> dict[tuple[str, str], int]:
    rows = connection.execute(
        f"SELECT tenant_id, environment_id, SUM(count) FROM {COUNTS_TABLE}"
        " GROUP BY tenant_id, environment_id"
    ).fetchall()
    return {(tenant, environment): int(total) for tenant, environment, total in rows}


@dataclass
class SeedReport:
    seeded: list[tuple[ScopePlan, float, str]] = field(default_factory=list)
    vacuum_seconds: float = 0.0


def ensure_data(
    *, database_url: str, environment: dict[str, str], plan: list[ScopePlan]
) -> SeedReport:
    report = SeedReport()
    with psycopg.connect(database_url, autocommit=True) as connection:
        counts = scope_counts(connection)
    for scope in plan:
        present = counts.get((scope.tenant, scope.environment), 0)
        if present == scope.count:
            continue
        if present:
            raise BenchError(
                f"{scope.tenant}/{scope.environment} holds {present:,} customers, not"
                f" {scope.count:,}: run again with --reset to rebuild the database"
            )
        print(f"seeding {scope.count:,} customers into {scope.tenant}/{scope.environment}")
        started = time.perf_counter()
        output = manage(
            environment,
            "seed_customers",
            f"--count={scope.count}",
            f"--tenant={scope.tenant}",
            f"--environment={scope.environment}",
            f"--seed={scope.seed}",
            capture=True,
        )
        seconds = time.perf_counter() - started
        print(f"  {output.strip()} (command: {seconds:.1f}s)")
        report.seeded.append((scope, seconds, output.strip()))
    if report.seeded:
        print("VACUUM ANALYZE (visibility map and statistics, as a settled database has them)")
        started = time.perf_counter()
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(f"VACUUM (ANALYZE) {CUSTOMER_TABLE}")
        report.vacuum_seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class Probes:
    """Real values of the benchmark scope to filter and search on."""

    email: str
    external_id: str
    email_fragment: str


def pick_probes(database_url: str, *, main_count: int) -> Probes:
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            f"SELECT email, external_id FROM {CUSTOMER_TABLE}"
            " WHERE tenant_id = %s AND environment_id = %s AND email IS NOT NULL"
            " AND email ~ '[0-9]' ORDER BY created_at OFFSET %s LIMIT 1",
            [BENCH_TENANT, BENCH_ENVIRONMENT, main_count // 3],
        ).fetchone()
    if row is None:
        raise BenchError("the benchmark scope has no customer with an email")
    email, external_id = row
    local, _, domain = email.partition("@")
    fragment = next(
        part for part in (domain.split(".")[0], local) if any(ch.isdigit() for ch in part)
    )
    return Probes(email=email.upper(), external_id=external_id, email_fragment=fragment.lower())


# -- The server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn as production starts it, in its own process group, always stopped."""

    def __init__(self, *, environment: dict[str, str], log_path: Path):
        self.port = free_port()
        self.environment = {**environment, "GUNICORN_BIND": f"{LOOPBACK}:{self.port}"}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.command = [GUNICORN, "crm.wsgi", "-c", "gunicorn.conf.py"]

    def start(self, *, timeout: float = 60.0) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches the workers
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
                connection.request("GET", "/admin/login/")
                if connection.getresponse().status == 200:
                    connection.close()
                    if len(self.worker_pids()) >= self.expected_workers():
                        return
            time.sleep(0.2)
        raise BenchError(f"gunicorn did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def expected_workers(self) -> int:
        return int(self.environment.get("GUNICORN_WORKERS", (os.cpu_count() or 1) * 2 + 1))

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            return [int(pid) for pid in children.read_text().split()]
        return []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the group we created, by its id
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def memory_kib(pid: int, key: str) -> int:
    """VmRSS / VmHWM of a process in KiB (0 once it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# -- HTTP ------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to the server; reconnects when the server closed it."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.port = port
        self.headers = headers
        self.connection: http.client.HTTPConnection | None = None

    def connect(self) -> http.client.HTTPConnection:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=600)
            self.connection.connect()
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def get(self, path: str) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending the request to the body's last byte)."""
        for attempt in range(2):
            connection = self.connect()  # outside the timing
            try:
                started = time.perf_counter()
                connection.request("GET", path, headers=self.headers)
                response = connection.getresponse()
                body = response.read()
                seconds = time.perf_counter() - started
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self.close()  # the server dropped an idle keep-alive connection
                if attempt:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, body, seconds
        raise AssertionError("unreachable")


def admin_login(port: int, *, username: str, password: str) -> str:
    """Log in through the admin's form (CSRF token, cookie jar); the Cookie header to send."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )
    base = f"http://{LOOPBACK}:{port}"
    with opener.open(f"{base}/admin/login/", timeout=30) as response:
        page = response.read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not match:
        raise BenchError("the admin login page has no CSRF token")
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": match.group(1),
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=form)
    with opener.open(request, timeout=30) as response:
        response.read()
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies:
        raise BenchError("the admin login failed: no session cookie")
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


# -- Measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """The raw SQL an ideal implementation needs: the page, then (when needed) the total."""

    page: sql.Composable
    page_params: tuple
    limit: int
    offset: int
    total: sql.Composable | None
    total_params: tuple = ()


@dataclass(frozen=True)
class Query:
    name: str
    path: str
    kind: str  # "api" or "admin"
    target_ms: float | None
    floor: Floor
    check: Callable[[bytes], str | None]  # a problem with the response body, or None


@dataclass
class Timing:
    samples: list[float]

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
    app: Timing
    floor: Timing

    @property
    def ratio(self) -> float:
        return self.app.p50 / self.floor.p50 if self.floor.p50 else math.inf

    @property
    def met(self) -> bool | None:
        return None if self.query.target_ms is None else self.app.p50 <= self.query.target_ms


def columns(alias: str, names=CONTRACT_COLUMNS) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, name) for name in names)


def page_sql(
    *,
    where: str,
    order: str = "c.created_at DESC, c.id DESC",
    join_parent: str | None = None,
    ids_first: bool = False,
) -> sql.Composable:
    """SELECT the contract's columns (and the parent's, when joined) ... LIMIT %s OFFSET %s.

    ``ids_first``: the best SQL for a deep page: the skipped rows are walked in the index
    alone (an index-only scan for the ids), then only the page's rows are read.
    """
    selected = columns("c")
    join = sql.SQL("")
    if join_parent == "full":
        selected = sql.SQL("{}, {}").format(selected, columns("p"))
    elif join_parent == "name":
        selected = sql.SQL("{}, {}").format(selected, sql.Identifier("p", "name"))
    if join_parent:
        join = sql.SQL(" LEFT JOIN {} p ON p.id = c.parent_customer_id").format(
            sql.Identifier(CUSTOMER_TABLE)
        )
    table = sql.Identifier(CUSTOMER_TABLE)
    if ids_first:
        return sql.SQL(
            "SELECT {} FROM {} c{} WHERE c.id IN (SELECT c.id FROM {} c WHERE "
            + where
            + " ORDER BY "
            + order
            + " LIMIT %s OFFSET %s) ORDER BY "
            + order
        ).format(selected, table, join, table)
    return sql.SQL(
        "SELECT {} FROM {} c{} WHERE " + where + " ORDER BY " + order + " LIMIT %s OFFSET %s"
    ).format(selected, table, join)


def counts_sql(where: str) -> sql.Composable:
    return sql.SQL("SELECT COALESCE(SUM(count), 0) FROM {} WHERE " + where).format(
        sql.Identifier(COUNTS_TABLE)
    )


# The admin's search counts up to this many matches (customers.selectors.SEARCH_COUNT_LIMIT).
SEARCH_COUNT_LIMIT = 1000


def capped_count_sql(where: str, limit: int = SEARCH_COUNT_LIMIT) -> sql.Composable:
    return sql.SQL(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {} c WHERE " + where + f" LIMIT {limit + 1}) s"
    ).format(sql.Identifier(CUSTOMER_TABLE))


def count_sql(where: str) -> sql.Composable:
    return sql.SQL("SELECT COUNT(*) FROM {} c WHERE " + where).format(
        sql.Identifier(CUSTOMER_TABLE)
    )


def api_check(*, items: int | None = None, at_least: int = 1, key: str | None = None):
    def check(body: bytes) -> str | None:
        data = json.loads(body)
        found = len(data["items"])
        if items is not None and found != items:
            return f"expected {items} items, got {found}"
        if found < at_least:
            return f"expected at least {at_least} items, got {found}"
        if key and found and key not in data["items"][0]:
            return f"items lack {key!r}"
        return None

    return check


def admin_check(must_contain: str | None = None):
    def check(body: bytes) -> str | None:
        text = body.decode(errors="replace")
        if 'id="result_list"' not in text:
            return "no result list (not logged in, or an error page)"
        if must_contain and must_contain.lower() not in text.lower():
            return f"the page does not show {must_contain!r}"
        return None

    return check


def build_queries(*, probes: Probes, main_count: int, deep_offset: int, common_word: str):
    scope = "c.tenant_id = %s AND c.environment_id = %s"
    scope_params = (BENCH_TENANT, BENCH_ENVIRONMENT)
    scope_counts = counts_sql("tenant_id = %s AND environment_id = %s")
    deep_page = deep_offset // 50 + 1
    search = scope + " AND c.search_key LIKE %s"

    def api(name, path, target, floor, check):
        return Query(name, path, "api", target, floor, check)

    def admin(name, path, target, floor, check):
        return Query(name, path, "admin", target, floor, check)

    email_where = scope + " AND c.email_key = %s"
    external_where = scope + " AND c.external_id = %s"
    return [
        api(
            "default list (limit 50)",
            "/v1/customers",
            10,
            Floor(page_sql(where=scope), scope_params, 50, 0, scope_counts, scope_params),
            api_check(items=50),
        ),
        api(
            "email=",
            "/v1/customers?" + urllib.parse.urlencode({"email": probes.email}),
            5,
            Floor(
                page_sql(where=email_where),
                (*scope_params, probes.email.lower()),
                50,
                0,
                count_sql(email_where),
                (*scope_params, probes.email.lower()),
            ),
            api_check(at_least=1),
        ),
        api(
            "external_id=",
            "/v1/customers?" + urllib.parse.urlencode({"external_id": probes.external_id}),
            5,
            Floor(
                page_sql(where=external_where),
                (*scope_params, probes.external_id),
                50,
                0,
                count_sql(external_where),
                (*scope_params, probes.external_id),
            ),
            api_check(items=1),
        ),
        api(
            "status=archived",
            "/v1/customers?status=archived",
            5,
            Floor(
                page_sql(where=scope + " AND c.status = 'archived'"),
                scope_params,
                50,
                0,
                counts_sql("tenant_id = %s AND environment_id = %s AND status = 'archived'"),
                scope_params,
            ),
            api_check(items=50),
        ),
        api(
            "sort=name&order=asc&limit=100",
            "/v1/customers?sort=name&order=asc&limit=100",
            10,
            Floor(
                page_sql(where=scope, order="c.name_key ASC, c.id ASC"),
                scope_params,
                100,
                0,
                scope_counts,
                scope_params,
            ),
            api_check(items=100),
        ),
        api(
            f"offset={deep_offset}",
            f"/v1/customers?offset={deep_offset}",
            60,
            Floor(
                page_sql(where=scope, ids_first=True),
                scope_params,
                50,
                deep_offset,
                scope_counts,
                scope_params,
            ),
            api_check(items=50),
        ),
        api(
            "limit=1000&expand=parent_customer",
            "/v1/customers?limit=1000&expand=parent_customer",
            40,
            Floor(
                page_sql(where=scope, join_parent="full"),
                scope_params,
                1000,
                0,
                scope_counts,
                scope_params,
            ),
            api_check(items=1000, key="parent_customer"),
        ),
        admin(
            "admin changelist",
            "/admin/customers/customer/",
            30,
            Floor(
                page_sql(where=scope, join_parent="name"),
                scope_params,
                50,
                0,
                scope_counts,
                scope_params,
            ),
            admin_check(),
        ),
        admin(
            f"admin search, common word ({common_word!r})",
            "/admin/customers/customer/?" + urllib.parse.urlencode({"q": common_word}),
            40,
            Floor(
                page_sql(where=search, join_parent="name"),
                (*scope_params, f"%{common_word}%"),
                50,
                0,
                capped_count_sql(search),
                (*scope_params, f"%{common_word}%"),
            ),
            admin_check(common_word),
        ),
        admin(
            f"admin search, rare email fragment ({probes.email_fragment!r})",
            "/admin/customers/customer/?" + urllib.parse.urlencode({"q": probes.email_fragment}),
            40,
            Floor(
                page_sql(where=search, join_parent="name"),
                (*scope_params, f"%{probes.email_fragment}%"),
                50,
                0,
                capped_count_sql(search),
                (*scope_params, f"%{probes.email_fragment}%"),
            ),
            admin_check(probes.email_fragment),
        ),
        admin(
            f"admin deep page (p={deep_page}, offset {deep_offset})",
            f"/admin/customers/customer/?p={deep_page}",
            None,
            Floor(
                page_sql(where=scope, join_parent="name", ids_first=True),
                scope_params,
                50,
                deep_offset,
                scope_counts,
                scope_params,
            ),
            admin_check(),
        ),
    ]


def http_sample(client: Client, query: Query, *, check: bool) -> float:
    status, body, seconds = client.get(query.path)
    if status != 200:
        raise BenchError(f"{query.name}: HTTP {status} for {query.path}: {body[:300]!r}")
    if check:
        problem = query.check(body)
        if problem:
            raise BenchError(f"{query.name}: {problem}")
    return seconds


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
    queries: list[Query],
    *,
    client_for: Callable[[Query], Client],
    connection: psycopg.Connection,
    warmup: int,
    samples: int,
) -> list[Result]:
    """Each query's warm-up requests, then rounds of ROUND_SAMPLES requests of every query
    (then as many of its floor) until each has ``samples``: a slow phase of this shared
    machine then lands on every query alike, instead of on whichever query was being
    measured when it came."""
    app: dict[str, list[float]] = {query.name: [] for query in queries}
    floor: dict[str, list[float]] = {query.name: [] for query in queries}
    for query in queries:
        for number in range(warmup):
            http_sample(client_for(query), query, check=number == 0)
            floor_sample(connection, query.floor)
    taken = 0
    while taken < samples:
        batch = min(ROUND_SAMPLES, samples - taken)
        for query in queries:
            for _ in range(batch):
                app[query.name].append(http_sample(client_for(query), query, check=False))
            for _ in range(batch):
                floor[query.name].append(floor_sample(connection, query.floor))
        taken += batch
    return [Result(query, Timing(app[query.name]), Timing(floor[query.name])) for query in queries]


@dataclass
class Throughput:
    connections: int
    seconds: float
    requests: int
    errors: int
    latencies: list[float]
    server_cpu_seconds: float  # gunicorn's processes (user + system) during the run
    client_cpu_seconds: float  # this process's, for the 8 client threads

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_ms_per_request(self) -> float:
        return self.server_cpu_seconds * 1000 / self.requests if self.requests else math.nan

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else math.nan


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes, from /proc/<pid>/stat."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def process_name_and_stat(pid: int | str) -> tuple[str, list[str]]:
    """(command name, the /proc/<pid>/stat fields after the name)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()


def postgres_cpu_seconds() -> float | None:
    """CPU time used by the local PostgreSQL server so far: its live processes, plus what
    the postmaster has collected from backends that have exited (cutime, cstime). None when
    no server process can be read (PostgreSQL on another machine)."""
    ticks, found = 0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            name, fields = process_name_and_stat(entry.name)
            if name != "postgres":
                continue
            found = True
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            parent_name, _ = process_name_and_stat(fields[1])
            if parent_name != "postgres":  # the postmaster: add its exited backends
                ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def measure_throughput(
    *, server: Server, headers: dict[str, str], path: str, connections: int, seconds: float
) -> Throughput:
    port = server.port
    server_pids = [server.process.pid, *server.worker_pids()]
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


def measure_export(*, server: Server, cookie: str, path: str) -> Export:
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
        connection.request("GET", path, headers={"Cookie": cookie})
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
        rows=newlines - 1,  # the header
        megabytes=size / 1e6,
        peak_rss_mib=peak[busiest] / 1024,
        baseline_rss_mib=baseline[busiest] / 1024,
        hwm_mib=memory_kib(busiest, "VmHWM") / 1024,
    )


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
    unindexed_copy_seconds: float  # the same file COPYed into a table without indexes
    cleanup_seconds: float

    @property
    def seed_rows_per_second(self) -> float:
        return self.seed_rows / self.seed_seconds

    @property
    def import_rows_per_second(self) -> float:
        return self.import_rows / self.import_seconds


WRITES_TENANT = "tenant_bench_writes"
SEED_ENVIRONMENT = "env_bench_writes_seed"
IMPORT_ENVIRONMENT = "env_bench_writes_import"


def command_seconds(output: str, pattern: str) -> float:
    match = re.search(pattern, output)
    if not match:
        raise BenchError(f"cannot read the duration in {output.strip()!r}")
    return float(match.group(1))


def remove_write_scopes(database_url: str) -> float:
    """Delete the scratch scopes' customers and counts, then VACUUM: the data set is as
    before (one DELETE, so parent links inside the set need no order)."""
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"DELETE FROM {CUSTOMER_TABLE} WHERE tenant_id = %s", [WRITES_TENANT])
        connection.execute(f"DELETE FROM {COUNTS_TABLE} WHERE tenant_id = %s", [WRITES_TENANT])
        connection.execute(f"VACUUM (ANALYZE) {CUSTOMER_TABLE}")
    return time.perf_counter() - started


def measure_writes(
    *, database_url: str, environment: dict[str, str], seed_rows: int, import_rows: int
) -> Writes:
    """`seed_customers --count seed_rows` into a new scope, and `import_customers` of a
    file of import_rows seeded customers into another, both into the full table (its
    indexes hold the million customers), with the server stopped."""
    remove_write_scopes(database_url)  # what an interrupted earlier run may have left
    try:
        print(f"seed_customers --count {seed_rows:,} into {WRITES_TENANT}/{SEED_ENVIRONMENT}")
        output = manage(
            environment,
            "seed_customers",
            f"--count={seed_rows}",
            f"--tenant={WRITES_TENANT}",
            f"--environment={SEED_ENVIRONMENT}",
            "--seed=21",
            capture=True,
        )
        print(f"  {output.strip()}")
        seed_seconds = command_seconds(output, r" in ([0-9.]+)s \(")
        with tempfile.TemporaryDirectory(prefix="crm_bench_import_") as directory:
            path = Path(directory) / "customers.csv"
            manage(
                environment,
                "seed_customers",
                f"--count={import_rows}",
                f"--tenant={WRITES_TENANT}",
                f"--environment={IMPORT_ENVIRONMENT}",
                "--seed=22",
                f"--csv={path}",
                capture=True,
            )
            # The import needs the scope to exist: an empty seeding creates it.
            manage(
                environment,
                "seed_customers",
                "--count=0",
                f"--tenant={WRITES_TENANT}",
                f"--environment={IMPORT_ENVIRONMENT}",
                capture=True,
            )
            print(f"import_customers of {import_rows:,} rows ({path.stat().st_size / 1e6:.0f} MB)")
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            postgres_before = postgres_cpu_seconds()
            output = manage(
                environment,
                "import_customers",
                str(path),
                f"--tenant={WRITES_TENANT}",
                f"--environment={IMPORT_ENVIRONMENT}",
                capture=True,
            )
            print(f"  {output.strip()}")
            import_seconds = command_seconds(output, r" in ([0-9.]+)s \(")
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            postgres_after = postgres_cpu_seconds()
            import_postgres_cpu_seconds = (
                postgres_after - postgres_before
                if postgres_before is not None and postgres_after is not None
                else None
            )
            import_cpu_seconds = (children_after.ru_utime - children_before.ru_utime) + (
                children_after.ru_stime - children_before.ru_stime
            )
            unindexed_copy_seconds = copy_into_unindexed_table(database_url, path)
            print(f"  the file COPYed into a table without indexes: {unindexed_copy_seconds:.2f}s")
    finally:
        print("removing the scratch scopes (DELETE, VACUUM ANALYZE)")
        cleanup_seconds = remove_write_scopes(database_url)
    return Writes(
        seed_rows=seed_rows,
        seed_seconds=seed_seconds,
        import_rows=import_rows,
        import_seconds=import_seconds,
        import_cpu_seconds=import_cpu_seconds,
        import_postgres_cpu_seconds=import_postgres_cpu_seconds,
        unindexed_copy_seconds=unindexed_copy_seconds,
        cleanup_seconds=cleanup_seconds,
    )


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


# -- Report ----------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB memory"
    return f"{model}, {os.cpu_count()} cores{memory} ({platform.system()} {platform.release()})"


def versions(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as connection:
        server = connection.execute("SHOW server_version").fetchone()[0]
    return (
        f"Python {platform.python_version()}, Django {importlib.metadata.version('django')},"
        f" PostgreSQL {server}, psycopg {psycopg.__version__},"
        f" gunicorn {importlib.metadata.version('gunicorn')}"
    )


def milliseconds(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


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
        f" The queries take turns, {ROUND_SAMPLES} requests (then {ROUND_SAMPLES} floor runs)"
        " at a time, so that a slow phase of the machine falls on all of them alike."
        " *Floor*: the same query as raw SQL through psycopg on one connection: the page"
        " (the contract's 17 columns, the parent's when expanded or shown) and, when the page"
        " does not show where the list ends, the total (the per-status counts for an"
        " unfiltered list, else `COUNT(*)`; for the admin's search, a count of up to"
        f' {SEARCH_COUNT_LIMIT:,} matches, as the admin shows more as "{SEARCH_COUNT_LIMIT}+").'
        " *Ratio* = app p50 / floor p50.",
        "",
        "| query | p50 | p95 | floor p50 | ratio | target (p50) | met? |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for result in results:
        target = "—" if result.query.target_ms is None else f"≤ {result.query.target_ms:g} ms"
        met = {None: "—", True: "yes", False: "**no**"}[result.met]
        lines.append(
            f"| {result.query.name} | {milliseconds(result.app.p50)}"
            f" | {milliseconds(result.app.p95)} | {milliseconds(result.floor.p50)}"
            f" | {result.ratio:.1f}x | {target} | {met} |"
        )
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
            f"Where the import's time goes: the command used {writes.import_cpu_seconds:.1f}s"
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


# -- Main ------------------------------------------------------------------------------------


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

    key_output = manage(
        environment,
        "create_api_key",
        f"--tenant={BENCH_TENANT}",
        f"--environment={BENCH_ENVIRONMENT}",
        "--name=bench",
        capture=True,
    )
    api_key = key_output.strip().splitlines()[-1].strip()
    staff_password = secrets.token_urlsafe(16)
    manage(
        environment,
        "create_staff_user",
        f"--username={STAFF_USERNAME}",
        f"--password={staff_password}",
        f"--tenant={BENCH_TENANT}",
        capture=True,
    )
    probes = pick_probes(arguments.database_url, main_count=main_scope.count)
    queries = build_queries(
        probes=probes,
        main_count=main_scope.count,
        deep_offset=deep_offset,
        common_word=arguments.common_word,
    )

    log_directory = Path(tempfile.mkdtemp(prefix="crm_bench_"))
    server = Server(environment=environment, log_path=log_directory / "gunicorn.log")
    results: list[Result] = []
    throughput = export = None
    try:
        print(f"starting gunicorn on {LOOPBACK}:{server.port} (log: {server.log_path})")
        server.start()
        cookie = admin_login(server.port, username=STAFF_USERNAME, password=staff_password)
        api_client = Client(server.port, {"Authorization": f"Bearer {api_key}"})
        admin_client = Client(server.port, {"Cookie": cookie})
        with psycopg.connect(arguments.database_url, autocommit=True) as connection:
            results = measure_interleaved(
                queries,
                client_for=lambda query: api_client if query.kind == "api" else admin_client,
                connection=connection,
                warmup=arguments.warmup,
                samples=arguments.samples,
            )
        for result in results:
            print(
                f"  {result.query.name:<52} p50 {result.app.p50:8.1f} ms  p95"
                f" {result.app.p95:8.1f} ms  floor {result.floor.p50:7.1f} ms  ratio"
                f" {result.ratio:5.1f}x"
            )
        api_client.close()
        admin_client.close()
        print(f"throughput: {arguments.connections} connections, {arguments.throughput_seconds}s")
        throughput = measure_throughput(
            server=server,
            headers={"Authorization": f"Bearer {api_key}"},
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
    finally:
        server.stop()
        with contextlib.suppress(BenchError):
            manage(environment, "revoke_api_key", api_key[:11], capture=True)

    if export is not None and export.rows != main_scope.count:
        raise BenchError(f"the export has {export.rows:,} rows, not {main_scope.count:,}")
    writes = None
    if not arguments.no_writes:
        writes = measure_writes(
            database_url=arguments.database_url,
            environment=environment,
            seed_rows=100_000 if arguments.quick else 1_000_000,
            import_rows=10_000 if arguments.quick else 100_000,
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
