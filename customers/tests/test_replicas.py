"""Read replicas (customers/db_router.py), against a real streaming replica of the primary.

`bash bin/replica` (which .ci/run runs) keeps one on 127.0.0.1:5433 (REPLICA_TEST_URL to
name another); without it these tests skip, except with CI=true, where they fail. Each test
adds the replica as a database alias of its own (the primary's test database, read through
the replica, which streams it like every other database of the cluster) and names it in
DATABASE_REPLICAS, as DATABASE_REPLICA_URLS does in production.

The tests that need no real replica (routing without replicas, a replica that does not
answer at all, the router) run wherever PostgreSQL does.
"""

import copy
import fcntl
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from urllib.parse import urlsplit

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.utils import load_backend
from django.test.utils import CaptureQueriesContext

from customers import db_router
from customers.db_router import PrimaryReplicaRouter, health, read_database, scope_written
from customers.models import Customer
from customers.scope import Scope
from customers.tests.conftest import IN_CI
from customers.tests.factories import make_customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REPLICA_URL = os.environ.get("REPLICA_TEST_URL", "postgres://root@127.0.0.1:5433")
# Held while a test uses the replica (and by bin/replica while it checks or repairs it):
# test runs of other checkouts on this machine share the replica, and these tests stop it
# and pause its replay.
LOCK_PATH = os.environ.get("REPLICA_LOCK", "/tmp/crm-replica.lock")
ALIAS = "replica_test"
ROUTERS = ["customers.db_router.PrimaryReplicaRouter"]


def skip_or_fail(message: str):
    if IN_CI:
        pytest.fail(f"{message}; CI=true, so the replica tests fail instead of skipping")
    pytest.skip(message)


def replica_conninfo(dbname: str) -> dict:
    parts = urlsplit(REPLICA_URL)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "root",
        "dbname": dbname,
        "connect_timeout": 3,
        "autocommit": True,
    }


def replica_sql(sql: str, params=(), *, dbname: str = "postgres"):
    with psycopg.connect(**replica_conninfo(dbname)) as connection:
        return connection.execute(sql, params).fetchone()


def primary_lsn() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return cursor.fetchone()[0]


def wait_replayed(timeout: float = 20.0) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = primary_lsn()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (done,) = replica_sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
        if done:
            return
        time.sleep(0.02)
    pytest.fail(f"the replica did not replay up to {target} within {timeout} s")


def replica_cluster() -> tuple[str, str]:
    """(version, name) of the local cluster listening on the replica's port."""
    port = str(replica_conninfo("postgres")["port"])
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return version, name
    skip_or_fail(f"no local cluster listens on :{port} (pg_lsclusters)")
    raise AssertionError  # unreachable


def pg_ctlcluster(action: str) -> None:
    version, name = replica_cluster()
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action]
    if action == "stop":
        command += ["-m", "fast"]  # the standby's sessions end; the primary is not touched
    subprocess.run(command, check=True, capture_output=True)


def wait_replica_up(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            replica_sql("SELECT 1")
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
    pytest.fail(f"the replica did not come back within {timeout} s")


def add_alias(database: dict) -> None:
    """ALIAS, this thread's connection to ``database``. Not in DATABASES: Django's test case
    would refuse a configured alias the test does not name, and flush it afterwards."""
    connections[ALIAS] = load_backend(database["ENGINE"]).DatabaseWrapper(database, ALIAS)
    db_router.caches[db_router.CACHE_ALIAS].clear()  # no marker left by an earlier test


def remove_alias() -> None:
    connections[ALIAS].close()
    del connections[ALIAS]


LOCK_WAIT_SECONDS = 180


def lock_holders() -> list[str]:
    """The command lines of the processes that have LOCK_PATH open (Linux's /proc)."""
    holders = []
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            if any(
                os.path.realpath(f"{fd_dir}/{fd}") == os.path.realpath(LOCK_PATH)
                for fd in os.listdir(fd_dir)
            ):
                with open(f"{os.path.dirname(fd_dir)}/cmdline", "rb") as cmdline:
                    holders.append(cmdline.read().replace(b"\0", b" ").decode().strip())
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return holders


@pytest.fixture
def replica_lock():
    """LOCK_PATH, held while the test runs. Other runs hold it for seconds at a time; one
    not released within LOCK_WAIT_SECONDS fails the test naming its holders, never a hang."""
    with open(LOCK_PATH, "a") as lock:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{LOCK_PATH} was not released within {LOCK_WAIT_SECONDS} s; "
                        f"it is open in: {lock_holders()}"
                    )
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def replica(replica_lock, transactional_db, settings):
    """The real replica as the alias ALIAS, named in DATABASE_REPLICAS; replay resumed."""
    deadline = time.monotonic() + 120
    while True:
        try:
            (in_recovery,) = replica_sql("SELECT pg_is_in_recovery()")
            break
        except psycopg.OperationalError as error:
            # Starting (another run's test restarted it a moment ago): wait; else none.
            starting = "starting up" in str(error) or "not yet accepting" in str(error)
            if not starting or time.monotonic() > deadline:
                skip_or_fail(f"no replica at {REPLICA_URL} ({error}); bash bin/replica")
            time.sleep(0.5)
    if not in_recovery:
        skip_or_fail(f"{REPLICA_URL} is not a replica (pg_is_in_recovery() is false)")
    replica_sql("SELECT pg_wal_replay_resume()")  # in case a test stopped half-way
    primary = connections[DEFAULT_DB_ALIAS].settings_dict
    test_database = primary["NAME"]
    try:
        wait_replayed()
        replica_sql("SELECT 1", dbname=test_database)
    except psycopg.OperationalError:
        skip_or_fail(f"{REPLICA_URL} is not a replica of this primary (no {test_database})")
    parts = urlsplit(REPLICA_URL)
    database = copy.deepcopy(primary)
    database.update(HOST=parts.hostname or "127.0.0.1", PORT=parts.port or 5432, TEST={})
    database["OPTIONS"]["connect_timeout"] = 2
    database["OPTIONS"].pop("pool", None)
    add_alias(database)
    settings.DATABASE_REPLICAS = (ALIAS,)
    settings.DATABASE_ROUTERS = ROUTERS
    settings.REPLICA_CHECK_SECONDS = 0  # every read checks the replica's lag
    settings.REPLICA_MAX_LAG_SECONDS = 60  # other databases' writes may lag it a little
    settings.REPLICA_RETRY_SECONDS = 0.2
    settings.REPLICA_READ_YOUR_WRITES_SECONDS = 5
    yield ALIAS
    replica_sql("SELECT pg_wal_replay_resume()")
    remove_alias()


def served_by(alias: str, request):
    """(what ``request()`` answered, the SQL it ran on ``alias``)."""
    with CaptureQueriesContext(connections[alias]) as queries:
        response = request()
    return response, [query["sql"] for query in queries.captured_queries]


def customer_reads(sql: list[str]) -> list[str]:
    return [statement for statement in sql if '"customers_customer"' in statement]


def in_recovery(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        return cursor.fetchone()[0]


def consumed(response):
    """The response, its streamed body read (the export's queries run as it is read)."""
    if getattr(response, "streaming", False):
        response.body = b"".join(response.streaming_content)
    return response


def listed_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


# --- against the real replica ---------------------------------------------------------------


def test_no_server_keeps_the_replica_lock_open():
    """bin/replica starts the servers with its lock's descriptor closed: a postmaster that
    inherited it held the lock for as long as it ran, and each test below waited for it."""
    servers = [holder for holder in lock_holders() if "postgres" in holder]
    assert not servers, f"{LOCK_PATH} is held open by {servers}"


def test_a_list_read_is_served_by_the_replica(replica, scope_a):
    made = [make_customer(scope_a.scope).pk for _ in range(3)]
    wait_replayed()
    api = scope_a.client()
    response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
    assert sorted(listed_ids(response)) == sorted(made)
    assert customer_reads(on_replica), "the page was not read from the replica"
    assert in_recovery(replica)  # the connection that read it is the standby's
    assert not in_recovery(DEFAULT_DB_ALIAS)
    _, on_primary = served_by(DEFAULT_DB_ALIAS, lambda: api.get("/v1/customers"))
    assert not customer_reads(on_primary)  # the key's check and touch only
    # The search, the export and the event log read there too; a write never does.
    for request in (
        lambda: api.post("/v1/customers/search", {"limit": 10}, format="json"),
        lambda: consumed(api.get("/v1/customers/export")),
        lambda: api.get("/v1/events"),
    ):
        response, on_replica = served_by(replica, request)
        assert response.status_code == 200
        assert customer_reads(on_replica) or any("customerevent" in q for q in on_replica)
    response, on_replica = served_by(
        replica, lambda: api.post("/v1/customers", {"external_id": "w", "name": "W"}, format="json")
    )
    assert response.status_code == 201
    assert not on_replica


def test_the_export_streams_from_the_replica_in_one_snapshot(replica, scope_a):
    for _ in range(3):
        make_customer(scope_a.scope)
    wait_replayed()
    response, on_replica = served_by(
        replica, lambda: consumed(scope_a.client().get("/v1/customers/export"))
    )
    assert response.body.count(b"\r\n") == 4  # the header and three customers
    assert any("REPEATABLE READ" in statement for statement in on_replica), on_replica


def test_a_write_then_a_read_in_the_same_scope_reads_the_write(replica, scope_a, scope_b):
    make_customer(scope_b.scope)
    wait_replayed()
    replica_sql("SELECT pg_wal_replay_pause()")  # nothing written from now on reaches it
    api = scope_a.client()
    created = api.post("/v1/customers", {"external_id": "new", "name": "New"}, format="json")
    assert created.status_code == 201
    new_id = created.json()["id"]
    # Within REPLICA_READ_YOUR_WRITES_SECONDS the scope reads the primary: the write is there.
    response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
    assert listed_ids(response) == [new_id]
    assert not customer_reads(on_replica)
    events, _ = served_by(replica, lambda: api.get("/v1/events"))
    assert [event["data"]["object"]["id"] for event in events.json()["items"]] == [new_id]
    # Another scope, not written, still reads the (paused) replica.
    response, on_replica = served_by(replica, lambda: scope_b.client().get("/v1/customers"))
    assert len(listed_ids(response)) == 1
    assert customer_reads(on_replica)
    # Once the marker expires, scope A reads the replica again, which has not replayed it:
    # the primary's answer above came from the marker, not from chance.
    db_router.caches[db_router.CACHE_ALIAS].delete(db_router.written_key(scope_a.scope))
    response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
    assert listed_ids(response) == []
    assert customer_reads(on_replica)


def test_a_stopped_replica_sends_reads_to_the_primary_with_no_error(
    replica, scope_a, settings, caplog
):
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        skip_or_fail("stopping the replica needs pg_ctlcluster, as root")
    made = [make_customer(scope_a.scope).pk for _ in range(2)]
    wait_replayed()
    api = scope_a.client()
    response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
    assert customer_reads(on_replica)  # its connection is open
    # The last check said it answers: the next reads try it and meet it stopped.
    settings.REPLICA_CHECK_SECONDS = 3600
    settings.REPLICA_RETRY_SECONDS = 3600
    assert read_database(scope=scope_a.scope) == replica
    caplog.set_level(logging.WARNING, logger="customers.db_router")
    pg_ctlcluster("stop")
    try:
        started = time.monotonic()
        assert sorted(listed_ids(api.get("/v1/customers"))) == sorted(made)
        assert time.monotonic() - started < 3
        assert len(api.get("/v1/events").json()["items"]) == 0  # made by the factory: none
        export = b"".join(api.get("/v1/customers/export").streaming_content)
        assert export.count(b"\r\n") == 3
        assert read_database(scope=scope_a.scope) == DEFAULT_DB_ALIAS  # skipped meanwhile
        # Reads met it failing once, and it is logged once (not once per request).
        down = [r for r in caplog.records if "does not answer" in r.getMessage()]
        assert len(down) == 1
        # The same with the export meeting it first (its stream falls back before a row).
        health.reset()
        settings.REPLICA_CHECK_SECONDS = 3600
        health.state(replica).usable = True
        health.state(replica).checked_at = time.monotonic()
        export = b"".join(api.get("/v1/customers/export").streaming_content)
        assert export.count(b"\r\n") == 3
    finally:
        pg_ctlcluster("start")
        wait_replica_up()
    # Back: once the retry delay is over, reads go to it again.
    settings.REPLICA_RETRY_SECONDS = 0.2
    settings.REPLICA_CHECK_SECONDS = 0
    time.sleep(0.3)
    wait_replayed()
    response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
    assert sorted(listed_ids(response)) == sorted(made)
    assert customer_reads(on_replica)


def test_a_lagging_replica_is_skipped(replica, scope_a, settings, caplog):
    make_customer(scope_a.scope)
    wait_replayed()
    settings.REPLICA_MAX_LAG_SECONDS = 0.5
    api = scope_a.client()
    response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
    assert customer_reads(on_replica)
    caplog.set_level(logging.WARNING, logger="customers.db_router")
    replica_sql("SELECT pg_wal_replay_pause()")
    try:
        later = make_customer(scope_a.scope)  # received by the replica, not replayed
        deadline = time.monotonic() + 10
        while db_router.replay_lag(replica) <= 0.5:
            assert time.monotonic() < deadline, "the paused replica's lag did not grow"
            time.sleep(0.1)
        response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
        assert later.pk in listed_ids(response)  # the primary's answer
        assert not customer_reads(on_replica)
        assert any("lags" in record.getMessage() for record in caplog.records)
    finally:
        replica_sql("SELECT pg_wal_replay_resume()")
    wait_replayed()
    # Caught up: used again, once a check finds its lag under the limit (the cluster's other
    # databases may be writing meanwhile: a bulk load's WAL can keep it 0.5 s behind a while).
    deadline = time.monotonic() + 60
    while True:
        response, on_replica = served_by(replica, lambda: api.get("/v1/customers"))
        assert later.pk in listed_ids(response)
        if customer_reads(on_replica):
            break
        assert time.monotonic() < deadline, "the replica was not used again after catching up"
        time.sleep(0.2)
    assert any("serves reads again" in record.getMessage() for record in caplog.records)


# --- without a real replica -----------------------------------------------------------------


@pytest.fixture
def silent_replica(transactional_db, settings):
    """A replica alias where nothing listens: it never answers."""
    database = copy.deepcopy(connections[DEFAULT_DB_ALIAS].settings_dict)
    database.update(HOST="127.0.0.1", PORT=1, TEST={})
    database["OPTIONS"]["connect_timeout"] = 2
    database["OPTIONS"].pop("pool", None)
    add_alias(database)
    settings.DATABASE_REPLICAS = (ALIAS,)
    settings.DATABASE_ROUTERS = ROUTERS
    settings.REPLICA_CHECK_SECONDS = 1
    settings.REPLICA_RETRY_SECONDS = 5
    settings.REPLICA_MAX_LAG_SECONDS = 2
    settings.REPLICA_READ_YOUR_WRITES_SECONDS = 5
    yield ALIAS
    remove_alias()


def test_a_replica_that_does_not_answer_is_skipped_and_logged_once(silent_replica, scope_a, caplog):
    made = make_customer(scope_a.scope)
    caplog.set_level(logging.WARNING, logger="customers.db_router")
    api = scope_a.client()
    for _ in range(3):
        assert listed_ids(api.get("/v1/customers")) == [made.pk]
        assert api.get("/v1/events").status_code == 200
        assert b"".join(api.get("/v1/customers/export").streaming_content).count(b"\r\n") == 2
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(down) == 1
    assert down[0].levelno == logging.ERROR
    assert read_database(scope=scope_a.scope) == DEFAULT_DB_ALIAS


def test_reads_inside_a_transaction_and_after_a_write_stay_on_the_primary(
    silent_replica, scope_a, monkeypatch
):
    monkeypatch.setattr(health, "usable", lambda alias: True)  # as if it answered
    scope = scope_a.scope
    assert read_database(scope=scope) == silent_replica
    with transaction.atomic():
        assert read_database(scope=scope) == DEFAULT_DB_ALIAS
    scope_written(scope)
    assert read_database(scope=scope) == DEFAULT_DB_ALIAS
    assert read_database(scope=Scope("tenant_a", "env_other")) == silent_replica


def test_without_replicas_nothing_is_asked(db, scope_a, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("no cache and no check without replicas")

    monkeypatch.setattr(db_router, "recently_written", refuse)
    monkeypatch.setattr(db_router.health, "usable", refuse)
    monkeypatch.setattr(db_router, "caches", None)
    assert read_database(scope=scope_a.scope) == DEFAULT_DB_ALIAS
    scope_written(scope_a.scope)
    made = make_customer(scope_a.scope)
    assert listed_ids(scope_a.client().get("/v1/customers")) == [made.pk]


def test_the_router_writes_to_the_primary_and_migrates_it_only(db, scope_a):
    router = PrimaryReplicaRouter()
    customer = make_customer(scope_a.scope)
    assert router.db_for_read(Customer) is None
    assert router.db_for_write(Customer, instance=customer) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "customers")
    assert not router.allow_migrate("replica_1", "customers")


def test_database_replica_urls_become_aliases_and_the_router():
    code = (
        "import django, json; django.setup(); from django.conf import settings;"
        "print(json.dumps([settings.DATABASE_REPLICAS, settings.DATABASE_ROUTERS,"
        " settings.DATABASES['replica_2']['PORT'], settings.DATABASES['replica_1']['TEST'],"
        " settings.DATABASES['replica_1']['OPTIONS']]))"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
        "DATABASE_URL": "postgres://root@127.0.0.1:5432/x",
        "DATABASE_REPLICA_URLS": "postgres://root@127.0.0.1:5433/x, postgres://root@10.0.0.2:5434/x",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    aliases, routers, port, test, options = json.loads(result.stdout.strip().splitlines()[-1])
    assert aliases == ["replica_1", "replica_2"]
    assert routers == ROUTERS
    assert port == 5434
    assert test["MIRROR"] == "default"
    assert options["connect_timeout"] == 2
    del environment["DATABASE_REPLICA_URLS"]
    code = "import django; django.setup(); from django.conf import settings;"
    code += "print(settings.DATABASE_REPLICAS, settings.DATABASE_ROUTERS, list(settings.DATABASES))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "() [] ['default']"
