"""`GET /v1/customers/export`: CSV and JSON Lines, the list's filters and order, one snapshot,
and lossless: export, import into an empty scope, export again gives the same bytes."""

import csv
import io
import json
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection

from customers import exports
from customers.importer import import_customers_csv
from customers.models import Customer, CustomerEvent, CustomerStatusCount
from customers.shape import FIELD_NAMES
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db

AWKWARD = 'Formula =SUM(A1) "quoted", comma\nnewline ünïcödé 中文 🙂 \u2028'


def body_of(response) -> str:
    assert response.status_code == 200, getattr(response, "content", b"")
    raw = b"".join(response.streaming_content)
    assert not raw.startswith(b"\xef\xbb\xbf")  # no BOM
    return raw.decode("utf-8")


def export(api, query: str = "", **headers) -> str:
    return body_of(api.get(f"/v1/customers/export{query}", **headers))


@pytest.fixture
def family(scope_a, scope_b):
    """Parents and grandchildren, awkward text, nulls, microseconds, metadata."""
    grandparent = make_customer(
        scope_a.scope,
        external_id="=1+1",
        name=AWKWARD,
        email=None,
        metadata={"clé": 'välue "q"', "formula": "@SUM(1)", "empty": ""},
        created_at=at("1999-12-31T23:59:59.000001"),
        updated_at=at("2024-02-29T12:00:00.5"),
    )
    parent = make_customer(
        scope_a.scope,
        external_id="-parent",
        name="+Parent",
        parent=grandparent,
        address_line1="1 Main St",
        address_country="FR",
        status="draft",
        created_at=at("2024-01-15T10:30:00"),
    )
    make_customer(
        scope_a.scope,
        external_id="child",
        name="Child",
        email="MiXeD@Example.com",
        parent=parent,
        status="archived",
        created_at=at("2024-01-15T10:30:00"),
    )
    make_customer(scope_b.scope, name="Another scope")
    return scope_a


def test_csv_is_the_contracts_columns_exactly_as_the_api_writes_them(api, family):
    text = export(api)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == FIELD_NAMES
    listed = api.get("/v1/customers?limit=1000").json()["items"]
    assert [row[0] for row in rows[1:]] == [item["id"] for item in listed]  # the list's order
    for row, item in zip(rows[1:], listed, strict=True):
        cells = dict(zip(FIELD_NAMES, row, strict=True))
        for field, value in item.items():
            if value is None:
                assert cells[field] == "", field
            elif field == "metadata":
                assert json.loads(cells[field]) == value
            else:
                assert cells[field] == value, field  # nothing neutralised, timestamps as is
    assert "Another scope" not in text


def test_csv_is_an_attachment_named_after_the_environment_and_time(api, family):
    response = api.get("/v1/customers/export")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="customers-env_a-\d{8}T\d{6}Z\.csv"', response["Content-Disposition"]
    )


def test_json_lines_are_the_lists_items(api, family):
    response = api.get("/v1/customers/export?format=jsonl")
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    lines = body_of(response).splitlines()
    listed = api.get("/v1/customers?limit=1000").json()["items"]
    assert [json.loads(line) for line in lines] == listed
    for line, item in zip(lines, listed, strict=True):
        assert list(json.loads(line)) == list(item)  # key order too


@pytest.mark.parametrize(
    ("accept", "kind"), [("text/csv", "csv"), ("application/x-ndjson", "jsonl"), ("*/*", "csv")]
)
def test_accept_chooses_the_format(api, family, accept, kind):
    response = api.get("/v1/customers/export", HTTP_ACCEPT=accept)
    assert response["Content-Disposition"].endswith(f'.{kind}"')


def test_every_list_filter_applies_in_the_lists_order(api, family):
    query = "?status=draft"
    assert [r["name"] for r in csv.DictReader(io.StringIO(export(api, query)))] == ["+Parent"]
    searched = export(api, "?q=child&format=jsonl").splitlines()
    assert [json.loads(line)["external_id"] for line in searched] == ["child"]
    ordered = export(api, "?sort=external_id&order=asc&format=jsonl").splitlines()
    assert [json.loads(line)["external_id"] for line in ordered] == ["-parent", "=1+1", "child"]
    tagged = export(api, "?metadata%5Bformula%5D=%40SUM(1)")
    assert [r["external_id"] for r in csv.DictReader(io.StringIO(tagged))] == ["=1+1"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("?limit=10", "limit"),
        ("?offset=0", "offset"),
        ("?cursor=abc", "cursor"),
        ("?expand=parent_customer", "expand"),
        ("?format=xml", "format"),
        ("?format=json", "format"),
        ("?format=csv&format=jsonl", "format"),
        ("?status=active", "status"),
        ("?q=ab", "q"),
        ("?stauts=draft", "stauts"),
    ],
)
def test_what_the_export_does_not_take_is_a_400_in_the_json_envelope(api, family, query, name):
    response = api.get(f"/v1/customers/export{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert name in response.json()["error"]["details"]


def test_the_export_needs_a_key(family):
    from rest_framework.test import APIClient

    response = APIClient().get("/v1/customers/export")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def wipe(scope) -> None:
    """An empty database for the scope: no customers, no events, no counts."""
    CustomerEvent.objects.filter(tenant_id=scope.tenant_id).delete()
    with connection.cursor() as cursor:
        # One statement: the parent links inside the set are checked at its end.
        cursor.execute(
            "DELETE FROM customers_customer WHERE tenant_id = %s AND environment_id = %s",
            [scope.tenant_id, scope.environment_id],
        )
    CustomerStatusCount.objects.filter(tenant_id=scope.tenant_id).delete()


def test_export_import_export_gives_the_same_bytes(api, family, tmp_path):
    first = export(api)
    before = {item["id"]: item for item in api.get("/v1/customers?limit=1000").json()["items"]}
    wipe(family.scope)
    assert export(api).count("\n") == 1  # only the header is left
    path = tmp_path / "export.csv"
    path.write_bytes(first.encode("utf-8"))
    result = import_customers_csv(path=path, tenant_id="tenant_a", environment_id="env_a")
    assert result.imported == 3
    assert export(api) == first
    for customer_id, item in before.items():
        assert api.get(f"/v1/customers/{customer_id}").json() == item


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_snapshot_however_long_the_stream(api, scope_a, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    start = at("2024-01-01T00:00:00")
    for number in range(10):
        make_customer(
            scope_a.scope,
            external_id=f"s{number}",
            name=f"Before {number}",
            created_at=start + timedelta(days=number),
        )
    stream = api.get("/v1/customers/export?sort=created_at&order=asc").streaming_content
    head = next(stream)  # the stream has begun: its snapshot is taken

    def write_meanwhile():
        make_customer(scope_a.scope, external_id="late", created_at=start + timedelta(days=99))
        Customer.objects.filter(external_id="s9").update(name="After")
        connection.close()

    writer = threading.Thread(target=write_meanwhile)
    writer.start()
    writer.join()
    text = (head + b"".join(stream)).decode()
    assert "Before 9" in text
    assert "After" not in text
    assert "late" not in text
    assert Customer.objects.filter(external_id="late").exists()


def test_a_format_the_list_does_not_serve_is_a_400_naming_it(api):
    response = api.get("/v1/customers?format=csv")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"format": ["must be one of json, api"]}
