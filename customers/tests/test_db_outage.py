"""A database that cannot be reached: gunicorn with production settings answers every `/v1/`
request that needs the database `503 service_unavailable` in the envelope within 3 s, the
admin pages a plain 503 page, `/healthz` 200 and `/readyz` 503; when the database is back the
same server process serves again (customers/outage.py, the timeouts in crm/settings/).

The outage is made without touching the shared PostgreSQL: a port where nothing listens
(refused), a socket that accepts and never answers (the connect timeout), and a TCP proxy in
front of the real server that is cut and restored (bench/tcpproxy.py).
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.test import override_settings

from bench.tcpproxy import TcpProxy, free_port
from customers.exports import in_one_snapshot
from customers.models import Customer
from customers.outage import limit_request_statements, timed_connections
from customers.tests.factories import make_customer, make_environment, make_key

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
LOOPBACK = "127.0.0.1"
BUDGET_SECONDS = 3.0
WELL_FORMED_KEY = "sk_" + "a" * 40  # the lookup runs: it needs the database
SESSION_COOKIE = "sessionid=" + "b" * 32  # the admin reads the session: the database again


@contextlib.contextmanager
def production_server(database_url: str, **extra_env):
    """gunicorn crm.wsgi with production settings, 1 worker, on a free port."""
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "GUNICORN_")) and key != "DATABASE_URL"
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="crm.settings.production",
        DJANGO_SECRET_KEY="outage-test-secret-" + "x" * 40,
        DATABASE_URL=database_url,
        DJANGO_CONN_MAX_AGE="600",
        DJANGO_SECURE_COOKIES="false",  # plain HTTP on the loopback: no redirect to HTTPS
        DJANGO_LOG_LEVEL="CRITICAL",
        GUNICORN_BIND=f"{LOOPBACK}:{port}",
        GUNICORN_WORKERS="1",
        # More threads than production's 4, so that every check's requests run at once (each
        # waits out the connect timeout when the database never answers).
        GUNICORN_THREADS="16",
        GUNICORN_ACCESS_LOG="/dev/null",
        **extra_env,
    )
    process = subprocess.Popen(
        [GUNICORN, "crm.wsgi", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get(port, "/healthz")[0] == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start: {process.stderr.read()[-3000:]!r}")
            time.sleep(0.1)
        yield port, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the group it leads: arbiter and worker
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        process.stderr.close()


def get(port: int, path: str, headers: dict | None = None, method: str = "GET", body=None):
    """(status, headers, body, seconds) of one request on a new connection."""
    started = time.monotonic()
    client = http.client.HTTPConnection(LOOPBACK, port, timeout=15)
    try:
        client.request(method, path, body=body, headers=headers or {})
        response = client.getresponse()
        data = response.read()
    finally:
        client.close()
    return response.status, dict(response.getheaders()), data, time.monotonic() - started


API_REQUESTS = [
    ("GET", "/v1/customers", None),
    ("GET", "/v1/customers?q=acme&status=published", None),
    ("GET", "/v1/customers/cust_01JG3SW4X9NXJH91TH138ZPTPD", None),
    ("POST", "/v1/customers", b'{"external_id": "e1", "name": "Acme"}'),
    ("PATCH", "/v1/customers/cust_01JG3SW4X9NXJH91TH138ZPTPD", b'{"name": "Acme"}'),
    ("POST", "/v1/customers/search", b"{}"),
    ("GET", "/v1/customers/export", None),
    ("GET", "/v1/events", None),
    ("GET", "/v1/webhook_endpoints", None),
]
ADMIN_PATHS = ["/admin/", "/admin/customers/customer/?q=acme", "/admin/customers/customer/add/"]


def assert_unavailable(port: int) -> None:
    """Every API request and admin page in parallel (each within the budget), the probes."""

    def api(request):
        method, path, body = request
        headers = {"x-api-key": WELL_FORMED_KEY, "Content-Type": "application/json"}
        return request, get(port, path, headers, method, body)

    def admin(path):
        return path, get(port, path, {"Cookie": SESSION_COOKIE})

    with ThreadPoolExecutor(max_workers=16) as pool:
        api_futures = [pool.submit(api, request) for request in API_REQUESTS]
        admin_futures = [pool.submit(admin, path) for path in ADMIN_PATHS]
        ready = pool.submit(get, port, "/readyz")
        alive = pool.submit(get, port, "/healthz")
        api_answers = [future.result() for future in api_futures]
        admin_answers = [future.result() for future in admin_futures]
        ready, alive = ready.result(), alive.result()
    for request, (status, headers, body, seconds) in api_answers:
        assert status == 503, (request, status, body[:300])
        assert seconds < BUDGET_SECONDS, (request, seconds)
        assert headers["Content-Type"] == "application/json"
        error = json.loads(body)["error"]
        assert error["code"] == "service_unavailable", body
        assert error["request_id"] == headers["X-Request-ID"]
        assert "Traceback" not in body.decode()
        assert "5432" not in body.decode()
    for path, (status, headers, body, seconds) in admin_answers:
        assert status == 503, (path, status, body[:300])
        assert seconds < BUDGET_SECONDS, (path, seconds)
        assert headers["Content-Type"].startswith("text/html")
        assert b"Service unavailable" in body
        assert b"Traceback" not in body
    assert ready[0] == 503
    assert ready[3] < BUDGET_SECONDS
    assert json.loads(ready[2]) == {"status": "unavailable", "database": "unavailable"}
    assert alive[0] == 200


def test_a_database_that_refuses_connections_is_a_503_everywhere():
    # Persistent connections, then a pool of them.
    for extra in ({}, {"DJANGO_DB_POOL_SIZE": "2"}):
        with production_server(f"postgres://root@{LOOPBACK}:{free_port()}/crm", **extra) as (
            port,
            _,
        ):
            assert_unavailable(port)


def test_a_database_that_never_answers_is_a_503_within_the_connect_timeout():
    with socket.create_server((LOOPBACK, 0), backlog=128) as silent:  # accepts, never answers
        silent_port = silent.getsockname()[1]
        with production_server(f"postgres://root@{LOOPBACK}:{silent_port}/crm") as (port, _):
            started = time.monotonic()
            status, _, body, seconds = get(port, "/v1/customers", {"x-api-key": WELL_FORMED_KEY})
            assert status == 503
            assert json.loads(body)["error"]["code"] == "service_unavailable"
            assert 1.5 < seconds < BUDGET_SECONDS  # the connect timeout (2 s), not a refusal
            assert_unavailable(port)
            assert time.monotonic() - started < 15


def database_url_through(port: int) -> str:
    settings = connection.settings_dict
    return f"postgres://{settings['USER'] or 'root'}@{LOOPBACK}:{port}/{settings['NAME']}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool_size", ["0", "3"], ids=["persistent", "pool"])
def test_the_same_server_serves_again_when_the_database_is_back(pool_size):
    environment = make_environment("tenant_outage", "env_outage")
    key = make_key(environment)
    make_customer(environment, external_id="before", name="Before Outage")
    headers = {"x-api-key": key, "Content-Type": "application/json"}
    target_port = int(connection.settings_dict["PORT"] or 5432)
    with (
        TcpProxy(target_port) as proxy,
        production_server(database_url_through(proxy.port), DJANGO_DB_POOL_SIZE=pool_size) as (
            port,
            process,
        ),
    ):
        status, _, body, _ = get(port, "/v1/customers", headers)
        assert status == 200
        assert json.loads(body)["pagination"]["total"] == 1
        assert get(port, "/readyz")[0] == 200

        proxy.cut()  # every connection of the server closed, new ones refused
        assert_unavailable(port)
        proxy.cut(blackhole=True)  # then accepted and never answered
        status, _, body, seconds = get(port, "/v1/customers", headers)
        assert status == 503
        assert seconds < BUDGET_SECONDS

        proxy.restore()
        restored = time.monotonic()
        if pool_size == "0":  # each broken connection was closed, a new one opens at once
            assert get(port, "/v1/customers", headers)[0] == 200
        else:  # the pool's attempt in its back-off gives up within 2 s, then a new one
            while get(port, "/v1/customers", headers)[0] != 200:
                assert time.monotonic() - restored < 8
        answers = [get(port, "/v1/customers", headers)[0] for _ in range(8)]
        assert answers == [200] * 8, answers  # no connection that broke is handed out
        create = b'{"external_id": "after", "name": "After Outage"}'
        status, _, body, _ = get(port, "/v1/customers", headers, "POST", create)
        assert status == 201, body
        assert get(port, "/readyz")[0] == 200
        assert get(port, "/admin/login/")[0] == 200
        assert process.poll() is None  # the same process, never restarted
    assert (
        Customer.objects.filter(
            environment_id="env_outage", external_id__in=["before", "after"]
        ).count()
        == 2
    )


@pytest.mark.postgres
@pytest.mark.skipif(
    settings.DATABASE_PGBOUNCER,
    reason="behind PgBouncer (transaction pooling) the request timeout is not set per"
    " connection (customers/outage.py): bin/test's PgBouncer pass",
)
@pytest.mark.django_db
def test_a_request_statement_timeout_cancels_long_statements_but_not_the_export():
    environment = make_environment()
    make_customer(environment, external_id="x1")
    with override_settings(DB_REQUEST_STATEMENT_TIMEOUT_MS=200):
        limit_request_statements(sender=None, connection=connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("200ms",)
            with pytest.raises(OperationalError), transaction.atomic():
                cursor.execute("SELECT pg_sleep(1)")
        rows = in_one_snapshot(Customer.objects.filter(environment_id=environment.id))
        assert next(rows).external_id == "x1"
        with connection.cursor() as cursor:  # inside the export's transaction
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("0",)
            cursor.execute("SELECT pg_sleep(0.3)")
        assert list(rows) == []
    finally:
        timed_connections.discard(connection.connection)
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")


def test_a_database_error_outside_a_view_is_a_503_not_django_500(rf):
    """A middleware that meets the database (Django turns its error into the 500 page
    before any outer middleware sees it): the outage middleware answers 503 instead."""
    from django.core.handlers.exception import convert_exception_to_response

    from customers.outage import DatabaseUnavailableMiddleware

    def session_saving_middleware(request):
        raise OperationalError("connection refused")

    def crashing_middleware(request):
        raise ValueError("not the database")

    outage = DatabaseUnavailableMiddleware(convert_exception_to_response(session_saving_middleware))
    for path, content_type in (("/admin/", "text/html"), ("/v1/customers", "application/json")):
        response = outage(rf.get(path))
        assert response.status_code == 503
        assert response["Content-Type"].startswith(content_type)
        assert response["Retry-After"] == "5"
    body = json.loads(outage(rf.get("/v1/customers")).content)
    assert body["error"]["code"] == "service_unavailable"
    # Any other error stays Django's 500.
    other = DatabaseUnavailableMiddleware(convert_exception_to_response(crashing_middleware))
    assert other(rf.get("/admin/")).status_code == 500
