"""The data set: the database, its plan of scopes, seeding, and real values to query for."""

import json
import os
import secrets
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import (
    BENCH_ENVIRONMENT,
    BENCH_TENANT,
    CONTRACT_COLUMNS,
    COUNTS_TABLE,
    CUSTOMER_TABLE,
    LOOPBACK_HOSTS,
    PYTHON,
    ROOT,
    BenchError,
)


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


def database_name(database_url: str) -> str:
    return check_loopback_url(database_url).path.strip("/")


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
        if not key.startswith(("DJANGO_", "GUNICORN_", "BENCH_"))
        and key not in ("DATABASE_URL", "PYTHONPATH")
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
        # The per-key rate limit (100/s by default) would answer the throughput run's and
        # the write runs' requests 429: the limiter still runs, with a limit never reached.
        API_RATE_LIMIT="1000000/s",
        PYTHONUNBUFFERED="1",
    )
    return environment


def manage(environment: dict[str, str], *args: str, capture: bool = False, cwd: Path = ROOT) -> str:
    """`manage.py ARGS` of the checkout at ``cwd`` (this one by default)."""
    command = [PYTHON, "manage.py", *args]
    completed = subprocess.run(
        command, cwd=cwd, env=environment, text=True, capture_output=capture, check=False
    )
    if completed.returncode != 0:
        detail = (completed.stderr or "").strip()[-2000:] if capture else ""
        raise BenchError(f"`manage.py {' '.join(args)}` failed ({completed.returncode}) {detail}")
    return completed.stdout if capture else ""


def app_value(environment: dict[str, str], module: str, name: str, *, cwd: Path = ROOT):
    """A constant of the app's code (one that needs Django set up to be imported), as JSON
    carries it: read by the checkout's own `manage.py shell`, so no copy can drift."""
    code = f"import json; from {module} import {name} as value; print(json.dumps(value))"
    output = manage(environment, "shell", "-c", code, capture=True, cwd=cwd)
    return json.loads(output.strip().splitlines()[-1])


def check_contract_columns(database_url: str) -> None:
    """The floors select CONTRACT_COLUMNS (customers.shape's API names) from the table."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        present = {
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                [CUSTOMER_TABLE],
            )
        }
    missing = [name for name in CONTRACT_COLUMNS if name not in present]
    if missing:
        raise BenchError(f"{CUSTOMER_TABLE} has no column {', '.join(missing)}: update bench/")


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
class Credentials:
    api_key: str
    staff_password: str


def create_credentials(environment: dict[str, str], *, staff_username: str) -> Credentials:
    """An API key of the benchmark scope and a staff user of its tenant (in the database, so
    any checkout served from it accepts them)."""
    key_output = manage(
        environment,
        "create_api_key",
        f"--tenant={BENCH_TENANT}",
        f"--environment={BENCH_ENVIRONMENT}",
        "--name=bench",
        capture=True,
    )
    api_key = key_output.strip().splitlines()[-1].strip()
    password = secrets.token_urlsafe(16)
    manage(
        environment,
        "create_staff_user",
        f"--username={staff_username}",
        f"--password={password}",
        f"--tenant={BENCH_TENANT}",
        capture=True,
    )
    return Credentials(api_key=api_key, staff_password=password)


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
