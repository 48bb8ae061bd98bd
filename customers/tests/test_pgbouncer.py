"""PgBouncer in transaction pooling mode (DATABASE_PGBOUNCER=true, bin/pgbouncer/).

bin/test runs the whole PostgreSQL suite a third time through PgBouncer on 127.0.0.1:6432
(.ci/run starts it); these tests check what that pass relies on. Those marked `pgbouncer`
only mean something there and skip elsewhere; the exports' streaming is checked on every
PostgreSQL pass, with Django's server-side cursors turned off as DATABASE_PGBOUNCER does.
"""

import csv
import os

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from customers import exports
from customers.importer import import_customers_csv
from customers.models import Customer
from customers.scope import Scope
from customers.tests.factories import make_customer

pytestmark = pytest.mark.postgres

through_pgbouncer = pytest.mark.skipif(
    not settings.DATABASE_PGBOUNCER,
    reason="runs in bin/test's PgBouncer pass (DATABASE_PGBOUNCER=true)",
)


def pgbouncer_admin(command: str) -> list[dict]:
    """A command of PgBouncer's admin console (the `pgbouncer` database), as dicts."""
    database = connection.settings_dict
    with psycopg.connect(
        host=database["HOST"],
        port=database["PORT"],
        user=database["USER"],
        dbname="pgbouncer",
        autocommit=True,
        prepare_threshold=None,
        cursor_factory=psycopg.ClientCursor,  # the console speaks the simple protocol only
    ) as admin:
        cursor = admin.execute(command)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@through_pgbouncer
def test_the_suite_talks_to_pgbouncer_in_transaction_mode(db):
    Customer.objects.count()  # this test's transaction holds a server connection
    pools = {pool["database"]: pool for pool in pgbouncer_admin("SHOW POOLS")}
    pool = pools[connection.settings_dict["NAME"]]
    assert pool["pool_mode"] == "transaction"
    assert pool["cl_active"] >= 1
    assert connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] is None


@through_pgbouncer
def test_no_statement_is_prepared(db, api, scope_a):
    make_customer(scope_a.scope)
    for _ in range(10):  # past psycopg's default prepare threshold (5)
        assert api.get("/v1/customers?status=published").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


def other_connection() -> psycopg.Connection:
    """A connection of its own to the suite's database (through PgBouncer in that pass)."""
    database = connection.settings_dict
    return psycopg.connect(
        host=database["HOST"],
        port=database["PORT"],
        user=database["USER"],
        dbname=database["NAME"],
        autocommit=True,
        prepare_threshold=None,
    )


def copies_running() -> int:
    """The export COPY statements in progress now (the server may have sent every row and
    wait in the transaction for the client to read them), seen from another connection."""
    with other_connection() as watcher:
        return watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT %%'"
            " AND state <> 'idle' AND pid <> pg_backend_pid()"
        ).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_exports_stream_in_their_transaction_with_server_side_cursors_off(
    api, scope_a, monkeypatch
):
    """DISABLE_SERVER_SIDE_CURSORS (PgBouncer's transaction pooling) turns Django's off for
    QuerySet.iterator(); the JSON Lines export declares its own cursor inside its
    transaction, and the CSV is one COPY, so both still stream in chunks instead of holding
    the whole result in memory."""
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    scope = scope_a.scope
    for _ in range(1200):  # more than two of the export's 500-row chunks
        make_customer(scope)

    response = api.get("/v1/customers/export?format=jsonl")
    assert response.status_code == 200
    chunks = iter(response.streaming_content)
    first = next(chunks)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, is_holdable FROM pg_cursors")
        cursors = cursor.fetchall()
    assert len(cursors) == 1, cursors  # open while the stream is read
    assert cursors[0][1] is False  # not WITH HOLD: it lives in the transaction only
    rest = b"".join(chunks)
    assert (first + rest).count(b"\n") == 1200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors")
        assert cursor.fetchone()[0] == 0

    # The CSV: one COPY, its connection busy with it until the stream ends (nothing else
    # may use that connection meanwhile), watched from another connection.
    response = api.get("/v1/customers/export")
    assert response.status_code == 200
    chunks = iter(response.streaming_content)
    try:
        first = next(chunks)
        assert copies_running() == 1
        rest = b"".join(chunks)
    finally:
        response.close()  # a failed assertion must not leave the COPY holding the connection
    assert (first + rest).count(b"\r\n") == 1201


@pytest.mark.django_db(transaction=True)
def test_a_csv_export_left_half_read_gives_its_connection_back(api, scope_a, monkeypatch):
    """A client that goes away mid-stream: the COPY is cancelled, its transaction ended, and
    the connection serves the next request."""
    monkeypatch.setattr(exports, "CHUNK_SIZE", 10)
    for _ in range(100):
        make_customer(scope_a.scope)
    response = api.get("/v1/customers/export")
    try:
        next(iter(response.streaming_content))
    finally:
        response.close()  # what the server does when the client is gone
    assert api.get("/v1/customers?limit=1").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer")
        assert cursor.fetchone()[0] == 100
    assert copies_running() == 0


@pytest.mark.django_db(transaction=True)
def test_a_statement_on_the_connection_of_a_csv_stream_is_an_error_not_a_wait(
    api, scope_a, monkeypatch
):
    """psycopg holds a connection's lock for a whole COPY: another statement of Django's on
    it would wait for the stream's end forever (in the same thread, that is never)."""
    monkeypatch.setattr(exports, "CHUNK_SIZE", 10)
    for _ in range(30):
        make_customer(scope_a.scope)
    response = api.get("/v1/customers/export")
    try:
        next(iter(response.streaming_content))
        with pytest.raises(RuntimeError, match="is streaming an export"):
            Customer.objects.count()
    finally:
        response.close()
    assert Customer.objects.count() == 30


@pytest.mark.django_db(transaction=True)
def test_the_import_copies_its_rows(tmp_path, scope_a):
    """The import's COPY ... FROM STDIN inside its transaction (through PgBouncer in that
    pass: one transaction, one server connection)."""
    path = tmp_path / "customers.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "name", "email"])
        for number in range(2500):
            writer.writerow([f"ext_{number}", f"Customer {number}", f"c{number}@example.com"])
    scope: Scope = scope_a.scope
    result = import_customers_csv(
        path=path, tenant_id=scope.tenant_id, environment_id=scope.environment_id
    )
    assert result.imported == 2500
    assert scope.confine(Customer.objects.all()).count() == 2500
    assert os.path.exists(path)
