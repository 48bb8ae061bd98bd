"""On PostgreSQL the API's CSV export is written by the database (COPY of each cell's text,
customers.api.export's CSVCellText): the same bytes as Python's csv writer over
machine_csv_cell, the lossless dialect, for every kind of awkward value."""

import pytest

from customers.api.export import csv_lines
from customers.exports import csv_rows, machine_csv_cell
from customers.selectors import customer_list
from customers.tests.factories import at, make_customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

AWKWARD_TEXT = 'Quote " comma, CR \r LF \n CRLF \r\n tab \t bell \x07 back\\slash é 中文 🙂 \u2028 '


@pytest.fixture
def awkward_customers(scope_a):
    parent = make_customer(
        scope_a.environment,
        external_id='=1+1,"x"',
        name=AWKWARD_TEXT,
        email=None,
        address_line1="  leading and trailing spaces  ",
        address_line2='"',
        metadata={
            "clé": 'välue "quoted", comma',
            "empty": "",
            "z": "\u2029",
            "ctrl": "\x01\x1f\b\f\n\r\t",
            "a": "\\",
            'long key, with "quotes"': "v",
        },
        created_at=at("1999-12-31T23:59:59"),
        updated_at=at("2024-02-29T12:00:00.000001"),
    )
    make_customer(
        scope_a.environment,
        name="Child",
        email="MiXeD@Example.com",
        parent=parent,
        address_line2="Suite 100",
        address_country="FR",
        status="draft",
        created_at=at("2024-01-15T10:30:00.5"),
    )
    make_customer(scope_a.environment, name="No metadata", metadata={}, status="archived")
    make_customer(scope_a.environment, name="", metadata={"k": "v"})
    return scope_a


def test_the_database_writes_the_bytes_pythons_csv_writer_writes(awkward_customers):
    queryset = customer_list(scope=awkward_customers.scope, filters={})
    by_python = "".join(csv_rows(queryset, cell=machine_csv_cell)).encode()
    by_database = b"".join(csv_lines(queryset))
    assert by_database.count(b"\r\n") >= 5
    assert by_database == by_python
