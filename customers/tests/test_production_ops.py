"""Production operations: `check --deploy` is clean under the production settings, HTTPS is
enforced (HSTS, the redirect, behind a TLS-terminating proxy), log lines are JSON with the
request's id (the app's and gunicorn's), and an internal error shows nothing of itself: the
body is the envelope (or Django's plain 500 page), the traceback is in the log only.
"""

import io
import json
import logging.config
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import ProgrammingError
from django.test import Client, override_settings

from crm.settings.base import logging_config
from customers.tests.factories import make_customer

ROOT = Path(__file__).resolve().parents[2]
# A query's text, as a database error carries it: none of it may reach a response body.
SQL_ERROR = (
    'relation "customers_customer" does not exist\n'
    'LINE 1: SELECT "customers_customer"."id" FROM "customers_customer" WHERE ...'
)
LEAKS = ("Traceback", "SELECT", "customers_customer", 'File "', ".py", str(ROOT))


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "GUNICORN_")) and key != "DATABASE_URL"
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "crm.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "crm.example.com,127.0.0.1",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        **extra,
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def settings_values(env: dict[str, str], *names: str) -> list:
    code = (
        "import django, json; django.setup(); from django.conf import settings;"
        f"print(json.dumps([getattr(settings, name, None) for name in {list(names)!r}]))"
    )
    result = run(["-c", code], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- check --deploy and the HTTPS settings --------------------------------------------------


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_https_defaults_of_production(tmp_path):
    values = settings_values(
        production_env(tmp_path),
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_PROXY_SSL_HEADER",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "DEBUG",
    )
    assert values == [True, 31_536_000, True, True, None, True, True, False]


def test_https_settings_come_from_the_environment(tmp_path):
    env = production_env(
        tmp_path,
        DJANGO_SECURE_HSTS_SECONDS="300",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        DJANGO_SECURE_HSTS_PRELOAD="false",
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        DJANGO_SECURE_SSL_REDIRECT="false",
    )
    values = settings_values(
        env,
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
    )
    assert values == [300, False, False, ["HTTP_X_FORWARDED_PROTO", "https"], False]
    # Plain HTTP (no secure cookies) means no redirect either, unless asked for.
    plain = production_env(tmp_path, DJANGO_SECURE_COOKIES="false")
    assert settings_values(plain, "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE") == [False, False]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECURE_HSTS_SECONDS", "a year", "DJANGO_SECURE_HSTS_SECONDS must be a whole"),
        ("DJANGO_SECURE_HSTS_PRELOAD", "maybe", "DJANGO_SECURE_HSTS_PRELOAD must be true or"),
        ("DJANGO_LOG_FORMAT", "xml", "DJANGO_LOG_FORMAT must be one of json, text"),
    ],
)
def test_a_bad_value_stops_production_at_startup(tmp_path, name, value, message):
    result = run(["-c", "import django; django.setup()"], production_env(tmp_path, **{name: value}))
    assert result.returncode != 0
    assert message in result.stderr


# --- gunicorn as production runs it: HTTPS behind a proxy, JSON lines -----------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirects)


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Host": "crm.example.com", **headers})
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_gunicorn_behind_a_tls_proxy_with_json_logs(tmp_path):
    port = free_port()
    env = production_env(
        tmp_path,
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
    )
    assert run(["manage.py", "migrate", "-v0"], env).returncode == 0
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("w") as out, stderr.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "crm.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, _ = fetch(f"{base}/healthz")
                break
            except OSError:
                assert server.poll() is None, stderr.read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        # The probes answer over plain HTTP (the load balancer's), without HSTS.
        assert status == 200
        status, headers, _ = fetch(f"{base}/readyz")
        assert (status, headers.get("Strict-Transport-Security")) == (200, None)
        # Anything else over plain HTTP goes to HTTPS.
        status, headers, _ = fetch(f"{base}/v1/customers?limit=1")
        assert status == 301
        assert headers["Location"] == "https://crm.example.com/v1/customers?limit=1"
        # What the proxy received over HTTPS is served, with HSTS, the id echoed.
        status, headers, body = fetch(
            f"{base}/v1/customers", **{"X-Forwarded-Proto": "https", "X-Request-ID": "req-tls-1"}
        )
        assert status == 401
        assert json.loads(body)["error"]["request_id"] == "req-tls-1"
        assert (
            headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
        )
        assert headers["X-Request-ID"] == "req-tls-1"
        # The admin's login page, an HTML page: its policy and a secure session cookie.
        status, headers, _ = fetch(f"{base}/admin/login/", **{"X-Forwarded-Proto": "https"})
        assert status == 200
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "Secure" in headers["Set-Cookie"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    lines = [json.loads(line) for line in stdout.read_text().splitlines() if line.strip()]
    assert lines, stderr.read_text()
    mine = [line for line in lines if line.get("request_id") == "req-tls-1"]
    # The app's own line (Django's warning for the 401) and gunicorn's access line.
    assert {line["logger"] for line in mine} == {"django.request", "gunicorn.access"}, mine
    app_line = next(line for line in mine if line["logger"] == "django.request")
    assert app_line["level"] == "WARNING"
    assert app_line["message"] == "Unauthorized: /v1/customers"
    access = next(line for line in mine if line["logger"] == "gunicorn.access")
    assert access["method"] == "GET"
    assert access["path"] == "/v1/customers"
    assert access["status"] == 401
    assert isinstance(access["duration_ms"], int)
    assert {line["status"] for line in lines if line["logger"] == "gunicorn.access"} == {
        200,
        301,
        401,
    }
    # gunicorn's own messages are JSON lines too (on stderr).
    errors = [json.loads(line) for line in stderr.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("Booting worker") for line in errors), errors


# --- internal errors: the body says nothing, the log says everything ------------------------


@pytest.fixture
def json_log(monkeypatch):
    """The production logging configuration, writing to a buffer instead of stdout."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buffer)
    logging.config.dictConfig(logging_config("json", "INFO"))
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


def log_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.mark.django_db
@override_settings(DEBUG=False)
@pytest.mark.parametrize(
    "error", [ProgrammingError(SQL_ERROR), RuntimeError(f"cannot open {ROOT}/secret.txt")]
)
def test_an_internal_error_in_an_api_view_is_the_envelope_only(
    monkeypatch, json_log, scope_a, error
):
    def crash(**kwargs):
        raise error

    # The selector behind GET /v1/customers/{id} fails as a broken query or a bug would.
    customer = make_customer(scope_a.environment)
    monkeypatch.setattr("customers.api.views.customer_get", crash)
    path = f"/v1/customers/{customer.pk}"
    response = scope_a.client().get(path, HTTP_X_REQUEST_ID="req-500-1")

    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": {
            "code": "internal_error",
            "message": "internal error",
            "details": {},
            "request_id": "req-500-1",
        },
    }
    body = response.content.decode()
    assert not [leak for leak in LEAKS if leak in body]

    lines = log_lines(json_log)
    assert lines, "nothing was logged"
    assert all(line["request_id"] == "req-500-1" for line in lines), lines
    (traceback,) = [line for line in lines if "exc_info" in line]
    assert traceback["level"] == "ERROR"
    assert traceback["logger"] == "customers.api"
    assert traceback["exc_info"].startswith("Traceback (most recent call last):")
    assert type(error).__name__ in traceback["exc_info"]
    assert str(error).splitlines()[0] in traceback["exc_info"]
    assert "crash" in traceback["exc_info"]  # the frame that raised
    assert any(line["message"] == f"Internal Server Error: {path}" for line in lines)


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_a_crash_outside_the_views_is_the_envelope_too(monkeypatch, json_log, api):
    def crash(path):
        raise ProgrammingError(SQL_ERROR)

    # The trailing-slash middleware, before any view.
    monkeypatch.setattr("customers.operations.resolves", crash)
    client = Client(raise_request_exception=False)
    response = client.get("/v1/customers/", HTTP_X_REQUEST_ID="req-500-2")

    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "internal_error",
        "message": "internal error",
        "details": {},
        "request_id": "req-500-2",
    }
    assert not [leak for leak in LEAKS if leak in response.content.decode()]
    lines = log_lines(json_log)
    (traceback,) = [line for line in lines if "exc_info" in line]
    assert traceback["request_id"] == "req-500-2"
    assert "ProgrammingError" in traceback["exc_info"]
    assert 'relation "customers_customer" does not exist' in traceback["exc_info"]


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_the_admins_500_page_is_plain(monkeypatch, json_log, scope_a, django_user_model):
    make_customer(scope_a.environment, name="Acme")
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")

    def crash(*args, **kwargs):
        raise ProgrammingError(SQL_ERROR)

    monkeypatch.setattr("customers.admin.CustomerAdmin.get_queryset", crash)
    client = Client(raise_request_exception=False)
    client.force_login(admin)
    response = client.get("/admin/customers/customer/", HTTP_X_REQUEST_ID="req-500-3")

    assert response.status_code == 500
    body = response.content.decode()
    assert "<h1>Server Error (500)</h1>" in body
    assert not [leak for leak in LEAKS if leak in body]
    assert response["X-Request-ID"] == "req-500-3"
    (traceback,) = [line for line in log_lines(json_log) if "exc_info" in line]
    assert traceback["logger"] == "django.request"
    assert traceback["request_id"] == "req-500-3"
    assert "ProgrammingError" in traceback["exc_info"]


# --- the log lines themselves ---------------------------------------------------------------


@pytest.mark.django_db
def test_every_line_of_a_request_carries_its_id(monkeypatch, json_log, api):
    from customers import operations

    logger = logging.getLogger("customers.test")
    resolves = operations.resolves

    def resolves_and_logs(path):
        logger.warning("inside the request", extra={"path_checked": path})
        return resolves(path)

    # The trailing-slash middleware resolves a slashed path: a line written mid-request.
    monkeypatch.setattr(operations, "resolves", resolves_and_logs)
    logger.info("outside any request")
    response = api.get("/v1/nothing-here/", HTTP_X_REQUEST_ID="req-log-1")
    assert response.status_code == 404

    outside, *request_lines = log_lines(json_log)
    assert outside["message"] == "outside any request"
    assert outside["request_id"] is None
    assert list(outside) == ["time", "level", "logger", "message", "request_id"]
    inside = request_lines[0]
    assert (inside["message"], inside["path_checked"]) == (
        "inside the request",
        "/v1/nothing-here/",
    )
    # Django's own line, written once the middleware has returned, names the request too.
    not_found = request_lines[-1]
    assert not_found["message"] == "Not Found: /v1/nothing-here/"
    assert not_found["status_code"] == 404
    assert "request" not in not_found  # the request object itself is not written
    assert {line["request_id"] for line in request_lines} == {"req-log-1"}


def test_the_text_format_names_the_request_too(capsys):
    logging.config.dictConfig(logging_config("text", "INFO"))
    try:
        from customers.request_id import current_request_id

        token = current_request_id.set("req-text-1")
        logging.getLogger("customers.test").warning("hello")
        current_request_id.reset(token)
        logging.getLogger("customers.test").warning("bye")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "WARNING customers.test [req-text-1] hello",
        "WARNING customers.test [-] bye",
    ]


# --- the Content-Security-Policy: HTML pages only -------------------------------------------


@pytest.mark.django_db
def test_html_pages_carry_the_policy_and_api_answers_do_not(api):
    page = Client().get("/admin/login/")
    assert page["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page["Content-Security-Policy"]
    docs = Client().get("/v1/docs/")
    nonce = docs["Content-Security-Policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    # Swagger UI's inline initialisation runs under the request's nonce, and only it.
    assert docs.content.decode().count(f'nonce="{nonce}"') == 2  # its <style> and <script>
    for response in (api.get("/v1/customers"), Client().get("/healthz")):
        assert response["Content-Type"] == "application/json"
        assert "Content-Security-Policy" not in response
