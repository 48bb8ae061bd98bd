"""PgBouncer in transaction pooling mode (DATABASE_PGBOUNCER=true, bin/pgbouncer/).

bin/test runs the whole PostgreSQL suite a third time through PgBouncer on 127.0.0.1:6432
(.ci/run starts it); these tests check what that pass relies on. Those marked `pgbouncer`
only mean something there and skip elsewhere; the export's cursor is checked on every
PostgreSQL pass, with Django's server-side cursors turned off as DATABASE_PGBOUNCER does.
"""

import csv
import os

import psycopg
import pytest
from django.conf import settings
from django.db import connection

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


def test_the_export_streams_through_a_cursor_in_its_transaction_with_server_side_cursors_off(
    db, api, scope_a, monkeypatch
):
    """DISABLE_SERVER_SIDE_CURSORS (PgBouncer's transaction pooling) turns Django's off for
    QuerySet.iterator(); the export declares its own inside its transaction, so it still
    fetches in chunks instead of holding the whole result in memory."""
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    scope = scope_a.scope
    for _ in range(1200):  # more than two of the export's 500-row fetches
        make_customer(scope)
    for url in ("/v1/customers/export", "/v1/customers/export?format=jsonl"):
        response = api.get(url)
        assert response.status_code == 200
        chunks = iter(response.streaming_content)
        first = next(chunks)
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, is_holdable FROM pg_cursors")
            cursors = cursor.fetchall()
        assert len(cursors) == 1, cursors  # open while the stream is read
        assert cursors[0][1] is False  # not WITH HOLD: it lives in the transaction only
        rest = b"".join(chunks)
        assert (first + rest).count(b"\n") == 1200 + (url.endswith("export"))
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_cursors")
            assert cursor.fetchone()[0] == 0


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
