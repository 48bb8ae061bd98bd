"""The production server setup: settings refuse to start without a secret, long URLs fit."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DATABASE_URL")
    }
    environment = {**inherited, **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = run_python(
        "import django; django.setup()", DJANGO_SETTINGS_MODULE="crm.settings.production"
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_settings_start_with_a_secret_key():
    result = run_python(
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.DEBUG, settings.CRM_ALLOW_DEMO_KEY)",
        DJANGO_SETTINGS_MODULE="crm.settings.production",
        DJANGO_SECRET_KEY="a-real-secret-for-this-test-only-0123456789",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_database_url_selects_the_database():
    result = run_python(
        "import django; django.setup(); from django.conf import settings;"
        "d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'], d['HOST'])",
        DJANGO_SETTINGS_MODULE="crm.settings.dev",
        DATABASE_URL="postgres://someone@db.internal:5432/crm",
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", "crm", "db.internal"]


def test_a_pool_size_gives_each_process_a_connection_pool():
    result = run_python(
        "import django; django.setup(); from django.conf import settings;"
        "d = settings.DATABASES['default']; print(d['CONN_MAX_AGE'], d['OPTIONS']['pool'])",
        DJANGO_SETTINGS_MODULE="crm.settings.dev",
        DATABASE_URL="postgres://someone@db.internal:5432/crm",
        DJANGO_DB_POOL_SIZE="6",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "0 {'min_size': 1, 'max_size': 6, 'timeout': 10, 'reconnect_timeout': 10}"
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_pooled_connections_serve_queries():
    from django.db import connection

    database = connection.settings_dict
    url = (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )
    result = run_python(
        "import django; django.setup(); from django.db import connection;"
        "print(connection.pool is not None, connection.cursor().execute('SELECT 41 + 1')"
        ".fetchone()[0], connection.pool.get_stats()['pool_max'])",
        DJANGO_SETTINGS_MODULE="crm.settings.dev",
        DATABASE_URL=url,
        DJANGO_DB_POOL_SIZE="3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "42", "3"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_serves_long_urls_and_static_files(tmp_path):
    """Behind the production server the 1000-id URL reaches the app (401 here: no key), and
    the collected static files (admin, Swagger UI) are served."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.production",
        "DJANGO_SECRET_KEY": "a-real-secret-for-this-test-only-0123456789",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        # Plain HTTP on the loopback: no redirect to HTTPS (production's default).
        "DJANGO_SECURE_SSL_REDIRECT": "false",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "crm.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ids = ",".join(f"cust_01JAAAAAAAAAAAAAAAAAAAA{number:03d}" for number in range(1000))
    url = f"http://127.0.0.1:{port}/v1/customers?customer_ids={ids}"
    assert len(url) > 32_000
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == 401, body
        assert '"code":"unauthenticated"' in body.replace(" ", "")
        for asset in ("admin/css/base.css", "customers/crm.css"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/{asset}") as response:
                assert response.status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
