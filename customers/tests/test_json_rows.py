"""On PostgreSQL the list's items are JSON written by the database (customers.api.json_rows):
the same objects, keys in the same order, as the Python rendering (row_as_dict), through the
one presenter (customers.api.presenters)."""

import json

import pytest

from customers.api.presenters import CustomerListPresenter
from customers.selectors import customer_page
from customers.tests.factories import at, make_customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

AWKWARD_TEXT = 'Quote " backslash \\ tab \t newline \n bell \x07 é 中文 🙂 \u2028 </script>'


@pytest.fixture
def awkward_customers(scope_a):
    parent = make_customer(
        scope_a.environment,
        name=AWKWARD_TEXT,
        email=None,
        metadata={"clé": 'välue "quoted"', "empty": "", "z": "\u2029"},
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
    return scope_a


@pytest.mark.parametrize("expand_parent", [False, True])
def test_the_database_writes_the_same_objects_as_python(awkward_customers, expand_parent):
    """The presenter's two projections of one page: values (as on SQLite) and JSON text."""
    presenter = CustomerListPresenter(expand_parent=expand_parent)
    assert presenter.database_writes_json

    def page(projection):
        return customer_page(
            scope=awkward_customers.scope, filters={}, limit=50, offset=0, projection=projection
        )

    python_presenter = CustomerListPresenter(expand_parent=expand_parent)
    python_presenter.database_writes_json = False
    expected = python_presenter.body(page(python_presenter.projection))["items"]
    written = [json.loads(text) for text in presenter.body(page(presenter.projection)).items_json]
    assert written == expected
    for mine, theirs in zip(written, expected, strict=True):
        assert list(mine) == list(theirs)  # the contract's key order
        if expand_parent and theirs["parent_customer"] is not None:
            assert list(mine["parent_customer"]) == list(theirs["parent_customer"])
    assert len(expected) == 3


def test_the_list_response_is_the_envelope_in_json(awkward_customers):
    response = awkward_customers.client().get("/v1/customers?expand=parent_customer")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.content.decode()
    assert "\u2028" not in body  # escaped, as DRF's renderer does
    data = json.loads(body)
    assert list(data) == ["items", "pagination"]
    assert data["pagination"] == {
        "total": 3,
        "limit": 50,
        "offset": 0,
        "has_more": False,
        "next_cursor": None,
    }
    names = {item["name"] for item in data["items"]}
    assert AWKWARD_TEXT in names
    child = next(item for item in data["items"] if item["name"] == "Child")
    assert child["parent_customer"]["name"] == AWKWARD_TEXT
    assert child["created_at"] == "2024-01-15T10:30:00.500000Z"
    assert child["parent_customer"]["created_at"] == "1999-12-31T23:59:59Z"
    assert child["parent_customer"]["updated_at"] == "2024-02-29T12:00:00.000001Z"
