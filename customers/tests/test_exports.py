"""The admin's CSV export on its own: the API's columns, spreadsheet-safe cells, streamed."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.exports import CHUNK_SIZE, COLUMNS, csv_cell, csv_rows, customers_csv_response
from customers.selectors import customer_list
from customers.shape import FIELD_NAMES
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        (None, ""),
        ({}, ""),
        ({"b": "2", "a": "=1"}, '{"a": "=1", "b": "2"}'),
    ],
)
def test_cells_that_a_spreadsheet_would_run_are_neutralised(value, cell):
    assert csv_cell(value) == cell


def test_the_header_is_the_contracts_fields_and_rows_read_back(scope_a):
    parent = make_customer(scope_a.scope, name="Parent")
    make_customer(
        scope_a.scope,
        name='Quote " and, comma\nnewline',
        parent=parent,
        email=None,
        created_at=at("2024-01-15T10:30:00.5"),
    )
    text = "".join(csv_rows(customer_list(scope=scope_a.scope, filters={"sort": "name"})))
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS == FIELD_NAMES
    by_name = {row[2]: dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]}
    child = by_name['Quote " and, comma\nnewline']
    assert child["parent_customer_id"] == parent.pk
    assert child["email"] == ""
    assert child["created_at"] == "2024-01-15T10:30:00.500000Z"


def test_rows_stream_in_chunks_from_one_query(scope_a):
    for _ in range(3):
        make_customer(scope_a.scope)
    with CaptureQueriesContext(connection) as queries:
        chunks = list(csv_rows(customer_list(scope=scope_a.scope, filters={})))
    assert len(chunks) == 1  # under CHUNK_SIZE rows: one piece after the header
    assert CHUNK_SIZE >= 100
    # One SELECT (on PostgreSQL, a server-side cursor declared for it), and no other read.
    selects = [query for query in queries if "SELECT" in query["sql"].upper()]
    assert len(selects) == 1


def test_the_response_is_a_streamed_attachment(scope_a):
    make_customer(scope_a.scope)
    response = customers_csv_response(
        customer_list(scope=scope_a.scope, filters={}), filename="customers.csv"
    )
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="customers.csv"'
    body = b"".join(response.streaming_content).decode()
    assert body.count("\n") == 2  # the header and the one customer
