"""Rate limits per API key (`API_RATE_LIMIT`): the 429, its headers and envelope, what is
never limited, the OpenAPI description, counters shared by two server processes through
Redis, and Redis stopping mid-test (the API keeps serving).

The Redis tests use the shared Redis at 127.0.0.1:6379 (the counters) and a Redis of their
own on a free port (the one that is stopped, never the shared one; not a fixed port, which
two test runs at once would share); without them they skip, except with CI=true.
"""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings
from rest_framework.test import APIClient

from crm.settings.base import ratelimit_cache
from customers.api import ratelimit
from customers.models import Customer
from customers.tests.conftest import IN_CI
from customers.tests.factories import make_customer, make_key
from customers.tests.test_openapi import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]
SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@pytest.fixture(autouse=True)
def fresh_counters():
    """Each test counts from zero, with the rate-limit cache's outage state reset."""
    cache = caches[ratelimit.CACHE_ALIAS]
    assert isinstance(cache, LocMemCache)  # never clear a Redis: it would be FLUSHDB
    cache.clear()
    ratelimit.outage.__init__()
    ratelimit.refusals.__init__()
    yield
    ratelimit.outage.__init__()
    ratelimit.refusals.__init__()


@pytest.fixture
def clock(monkeypatch):
    """The limiter's wall clock, pinned (so that no window ends mid-test) and movable."""
    now = SimpleNamespace(value=1_800_000_000.25)  # 0.25 s into a second, a minute, an hour
    monkeypatch.setattr(
        ratelimit,
        "time",
        SimpleNamespace(time=lambda: now.value, monotonic=time.monotonic),
    )
    return now


def rate_headers(response) -> dict:
    return {name: response.get(name) for name in HEADERS}


def ask(client: APIClient, count: int, url: str = "/v1/customers") -> list:
    return [client.get(url) for _ in range(count)]


# --- the setting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [("100/s", (100, 1)), ("6000/min", (6000, 60)), ("1/h", (1, 3600)), (" 5/min ", (5, 60))],
)
def test_the_rate_forms(text, rate):
    assert ratelimit.rate_of(text) == ratelimit.Rate(*rate)


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "API_RATE_LIMIT"} | env
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


@pytest.mark.parametrize("bad", ["100", "100/d", "0/s", "-1/s", "1.5/s", "100/sec", "ten/min"])
def test_a_bad_rate_stops_the_app_at_startup_with_a_clear_message(bad):
    result = run_python(
        "import django; django.setup()",
        DJANGO_SETTINGS_MODULE="crm.settings.dev",
        API_RATE_LIMIT=bad,
    )
    assert result.returncode != 0
    assert (
        f"API_RATE_LIMIT must be N/s, N/min or N/h with N a whole number from 1 (e.g. 100/s),"
        f" not {bad!r}"
    ) in result.stderr


def test_the_default_is_100_per_second_in_memory_without_redis():
    result = run_python(
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.API_RATE_LIMIT, settings.CACHES['ratelimit']['BACKEND'])",
        DJANGO_SETTINGS_MODULE="crm.settings.dev",
        REDIS_URL="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["100/s", "django.core.cache.backends.locmem.LocMemCache"]


def test_redis_url_puts_the_counters_in_redis():
    result = run_python(
        "import django; django.setup(); from django.conf import settings;"
        "c = settings.CACHES['ratelimit']; print(c['BACKEND'], c['LOCATION'])",
        DJANGO_SETTINGS_MODULE="crm.settings.dev",
        REDIS_URL="redis://cache.internal:6379/2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.cache.backends.redis.RedisCache",
        "redis://cache.internal:6379/2",
    ]


def test_a_bad_redis_url_stops_the_app():
    result = run_python(
        "import django; django.setup()",
        DJANGO_SETTINGS_MODULE="crm.settings.dev",
        REDIS_URL="cache.internal:6379",
    )
    assert result.returncode != 0
    assert "REDIS_URL must be a redis://, rediss:// or unix:// URL" in result.stderr


# --- the limit, in memory ----------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="3/min")
def test_past_the_limit_a_429_in_the_envelope_with_retry_after(scope_a, clock):
    api = scope_a.client()
    first = ask(api, 3)
    assert [r.status_code for r in first] == [200, 200, 200]
    # 0.25 s into the minute: 59.75 s to go, said in whole seconds (rounded up).
    assert [rate_headers(r) for r in first] == [
        {"RateLimit-Limit": "3", "RateLimit-Remaining": str(left), "RateLimit-Reset": "60"}
        for left in (2, 1, 0)
    ]
    clock.value += 20
    refused = api.get("/v1/customers")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert refused.json() == {
        "success": False,
        "error": {
            "code": "rate_limited",
            "message": (
                "too many requests: this API key may make 3 requests per minute; retry after 40 s"
            ),
            "details": {},
            "request_id": refused["X-Request-ID"],
        },
    }
    assert refused["Retry-After"] == "40"
    assert rate_headers(refused) == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "40",
    }
    # The next window starts afresh.
    clock.value += 40
    again = api.get("/v1/customers")
    assert again.status_code == 200
    assert rate_headers(again)["RateLimit-Remaining"] == "2"


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="2/s")
def test_refusals_are_logged_once_a_minute_per_key_not_per_request(scope_a, clock, caplog):
    caplog.set_level(logging.INFO)
    api = scope_a.client()
    for _ in range(30):  # 30 windows of a second, each refusing 3 requests
        assert [r.status_code for r in ask(api, 5)] == [200, 200, 429, 429, 429]
        clock.value += 1
    lines = [r.getMessage() for r in caplog.records]
    prefix = scope_a.key[:11]
    assert lines == [f"API key {prefix} passed its rate limit of 2 requests per second"]


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="2/s")
def test_a_refused_request_reaches_no_view(scope_a, clock):
    api = scope_a.client()
    ask(api, 2)
    response = api.post("/v1/customers", {"external_id": "e1", "name": "N"}, format="json")
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert not Customer.objects.exists()


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="2/s")
def test_the_export_refuses_in_json_too(scope_a, clock):
    api = scope_a.client()
    ask(api, 2)
    response = api.get("/v1/customers/export", {"format": "csv"})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="2/min")
def test_each_key_has_its_own_count_whichever_header_carries_it(scope_a, scope_b, clock):
    assert scope_a.client("bearer").get("/v1/customers").status_code == 200
    assert scope_a.client("x-api-key").get("/v1/customers").status_code == 200
    assert scope_a.client("bearer").get("/v1/customers").status_code == 429
    # Another key of the same scope, and a key of another tenant: untouched.
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=make_key(scope_a.environment))
    assert rate_headers(other.get("/v1/customers"))["RateLimit-Remaining"] == "1"
    assert rate_headers(scope_b.client().get("/v1/customers"))["RateLimit-Remaining"] == "1"


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="5/min")
def test_every_answer_to_a_key_carries_the_headers(scope_a, clock):
    api = scope_a.client()
    customer = make_customer(scope_a.environment)
    answers = [
        api.get(f"/v1/customers/{customer.id}"),  # 200
        api.get("/v1/customers", {"limit": "0"}),  # 400
        api.get("/v1/customers/cust_01J2Z3K4M5N6P7Q8R9S0T1V2W3"),  # 404
        api.get("/v1/nothing-here"),  # 404 outside any view
    ]
    assert [r.status_code for r in answers] == [200, 400, 404, 404]
    assert [r["RateLimit-Remaining"] for r in answers] == ["4", "3", "2", "1"]
    # A key that does not exist is counted too (its 401 costs a lookup that a flood would
    # repeat), under its own count.
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer sk_" + "x" * 40)
    unknown = stranger.get("/v1/customers")
    assert unknown.status_code == 401
    assert rate_headers(unknown)["RateLimit-Remaining"] == "4"


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="1/min")
def test_probes_and_the_api_description_are_never_limited(scope_a, clock):
    api = scope_a.client()
    ask(api, 2)
    assert api.get("/v1/customers").status_code == 429
    for url in ("/healthz", "/readyz", "/v1/openapi.json", "/v1/docs/"):
        for _ in range(3):
            response = api.get(url)
            assert response.status_code == 200, url
            assert rate_headers(response) == dict.fromkeys(HEADERS), url


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="1/min")
def test_requests_without_a_usable_key_are_not_counted(scope_a, clock):
    """No key, a malformed one (refused without a lookup), or a signed-in operator."""
    anonymous = APIClient()
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")
    for client in (anonymous, malformed):
        for _ in range(3):
            response = client.get("/v1/customers")
            assert response.status_code == 401
            assert rate_headers(response) == dict.fromkeys(HEADERS)
    operator = get_user_model().objects.create_superuser("root", password="pw")
    staff = APIClient()
    staff.force_login(operator)
    assert [r.status_code for r in ask(staff, 3)] == [200, 200, 200]


# --- the OpenAPI description -------------------------------------------------------------------


@pytest.fixture
def spec(db) -> dict:
    response = APIClient().get("/v1/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_every_operation_documents_the_429_and_the_headers(spec):
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
    ]
    assert {(path, method) for path, method, _ in operations} >= set(OPERATIONS)
    for path, method, operation in operations:
        responses = operation["responses"]
        refused = responses["429"]
        assert refused["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorEnvelope"
        }, (path, method)
        assert refused["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
        for status, response in responses.items():
            headers = response["headers"]
            assert {name: headers[name]["schema"]["type"] for name in HEADERS} == dict.fromkeys(
                HEADERS, "integer"
            ), (path, method, status)
        assert list(responses) == sorted(responses), (path, method)


@pytest.mark.django_db
@override_settings(API_RATE_LIMIT="2/s")
def test_the_documented_429_is_what_the_api_answers(scope_a, clock):
    spec = json.loads(APIClient().get("/v1/openapi.json").content)
    example = spec["paths"]["/v1/customers"]["get"]["responses"]["429"]["content"][
        "application/json"
    ]["examples"]["RateLimited"]["value"]
    api = scope_a.client()
    ask(api, 2)
    body = api.get("/v1/customers").json()
    body["error"].pop("request_id")
    assert body == example


# --- Redis -------------------------------------------------------------------------------------


def needs(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what}; CI=true, so the Redis tests fail instead of skipping")
    pytest.skip(what)


@pytest.fixture
def shared_redis() -> str:
    """The machine's Redis (127.0.0.1:6379), which .ci/run starts."""
    try:
        redis.Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        needs(f"no Redis at {SHARED_REDIS_URL} ({error})")
    return SHARED_REDIS_URL


def redis_caches(url: str) -> dict:
    """The settings' own Redis cache, with a prefix no other test or run shares."""
    cache = ratelimit_cache(url)
    cache["KEY_PREFIX"] = f"crm-test-{uuid.uuid4().hex}"
    return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}} | {
        ratelimit.CACHE_ALIAS: cache
    }


@pytest.mark.django_db
def test_counts_in_redis_one_round_trip_a_request(scope_a, shared_redis, clock):
    with override_settings(CACHES=redis_caches(shared_redis), API_RATE_LIMIT="3/min"):
        api = scope_a.client()
        assert api.get("/v1/customers").status_code == 200  # connects (and says hello)
        sent = []
        original = redis.connection.Connection.send_packed_command

        def counting(connection, command, *args, **kwargs):
            sent.append(command)
            return original(connection, command, *args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(redis.connection.Connection, "send_packed_command", counting)
            answers = ask(api, 3)
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert answers[2]["Retry-After"] == "60"
        assert len(sent) == 3  # one pipeline (INCR + EXPIRE) a request
        server = redis.Redis.from_url(shared_redis)
        keys = server.keys(f"{caches[ratelimit.CACHE_ALIAS].key_prefix}:*")
        assert len(keys) == 1
        assert int(server.get(keys[0])) == 4
        assert 0 < server.ttl(keys[0]) <= 61


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server stopped"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing served on port {port}")


def get(port: int, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/customers?limit=1", headers={"x-api-key": key}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_two_server_processes_share_one_count(tmp_path, shared_redis):
    """Two gunicorn servers (production settings, one worker each) on one database and one
    Redis: one key's requests to either are counted together."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.production",
        "DJANGO_SECRET_KEY": "a-real-secret-for-this-test-only-0123456789",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_STATIC_ROOT": str(tmp_path),
        "REDIS_URL": shared_redis,
        "API_RATE_LIMIT": "20/h",
        "GUNICORN_WORKERS": "1",
        # Plain HTTP on the loopback: no redirect to HTTPS, no secure-only cookies.
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    created = subprocess.run(
        [*manage, "create_api_key", "--tenant", "t_rl", "--environment", "e_rl"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "crm.wsgi"],
            cwd=ROOT,
            env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_until_serving(port, server)
        # An hour's window: if this one ends within the test, the count starts again.
        if time.time() % 3600 > 3600 - 30:
            time.sleep(3600 - time.time() % 3600 + 0.1)
        answers = [get(ports[index % 2], key) for index in range(30)]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
    statuses = [status for status, _ in answers]
    assert statuses == [200] * 20 + [429] * 10
    # Alternating between the servers, the count went down by one at each request.
    remaining = [int(headers["RateLimit-Remaining"]) for _, headers in answers]
    assert remaining == [*range(19, -1, -1), *[0] * 10]
    assert {headers["RateLimit-Limit"] for _, headers in answers} == {"20"}
    assert all(int(headers["Retry-After"]) >= 1 for _, headers in answers[20:])


class OwnRedis:
    """A redis-server of this test's own, which it may stop and start again."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            needs("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"redis-server did not start on {self.port}"
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis():
    server = OwnRedis(free_port())
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db
def test_with_redis_stopped_the_api_keeps_serving(scope_a, own_redis, caplog, monkeypatch):
    monkeypatch.setattr(ratelimit, "RETRY_CACHE_AFTER_SECONDS", 0.2)
    caplog.set_level(logging.WARNING, logger="customers.api.ratelimit")
    api = scope_a.client()
    with override_settings(CACHES=redis_caches(own_redis.url), API_RATE_LIMIT="1000/h"):
        counted = ask(api, 3)
        assert [r.status_code for r in counted] == [200, 200, 200]
        assert [int(r["RateLimit-Remaining"]) for r in counted] == [999, 998, 997]

        own_redis.stop()
        started = time.monotonic()
        uncounted = ask(api, 50)
        elapsed = time.monotonic() - started
        assert [r.status_code for r in uncounted] == [200] * 50
        assert all(rate_headers(r) == dict.fromkeys(HEADERS) for r in uncounted)
        assert elapsed < 10
        # Logged once, not once per request.
        outages = [r for r in caplog.records if "not enforced" in r.getMessage()]
        assert len(outages) == 1
        assert outages[0].levelno == logging.ERROR

        own_redis.start()  # empty: its counts start again
        deadline = time.monotonic() + 10
        while rate_headers(api.get("/v1/customers"))["RateLimit-Limit"] is None:
            assert time.monotonic() < deadline, "the counts did not come back"
            time.sleep(0.05)
        assert api.get("/v1/customers")["RateLimit-Limit"] == "1000"
        assert any("enforced again" in r.getMessage() for r in caplog.records)


def test_an_outage_is_logged_at_most_once_a_minute(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="customers.api.ratelimit")
    now = SimpleNamespace(value=1000.0)
    monkeypatch.setattr(
        ratelimit, "time", SimpleNamespace(time=time.time, monotonic=lambda: now.value)
    )
    outage = ratelimit.CacheOutage()
    for _ in range(100):
        outage.failed(ConnectionError("refused"))
        now.value += 0.5  # 50 s in all
    assert len(caplog.records) == 1
    now.value += 10
    outage.failed(ConnectionError("refused"))
    assert len(caplog.records) == 2
    assert "100 request(s) served uncounted" in caplog.records[1].getMessage()


def test_a_flapping_cache_is_logged_at_most_twice_a_minute(caplog, monkeypatch):
    """Each outage reported (once a minute at most), and the end of each reported one."""
    caplog.set_level(logging.WARNING, logger="customers.api.ratelimit")
    now = SimpleNamespace(value=1000.0)
    monkeypatch.setattr(
        ratelimit, "time", SimpleNamespace(time=time.time, monotonic=lambda: now.value)
    )
    outage = ratelimit.CacheOutage()
    for _ in range(20):  # down and up again every 3 s, for 60 s
        outage.failed(ConnectionError("refused"))
        now.value += 1.5
        outage.recovered()
        now.value += 1.5
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "not enforced" in messages[0]
    assert "enforced again" in messages[1]
    outage.failed(ConnectionError("refused"))
    assert "20 request(s) served uncounted" in caplog.records[-1].getMessage()
