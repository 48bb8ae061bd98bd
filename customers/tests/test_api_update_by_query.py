"""`PUT /v1/customers?id=` and `?external_customer_id=`: Flexprice's update, the same as
`PUT /v1/customers/{id}` (rules, errors, events, idempotency)."""

import json

import pytest

from customers.models import CustomerEvent
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db


def put(api, query: str, body: dict, **headers):
    return api.put(
        f"/v1/customers?{query}", data=json.dumps(body), content_type="application/json", **headers
    )


def test_by_id_and_by_external_id_update_only_the_fields_sent(api, scope_a):
    customer = make_customer(scope_a.scope, external_id="ext-9", name="Before", email="a@b.co")
    by_id = put(api, f"id={customer.pk}", {"name": "After"})
    assert by_id.status_code == 200
    assert (by_id.json()["name"], by_id.json()["email"]) == ("After", "a@b.co")
    by_external = put(api, "external_customer_id=ext-9", {"email": "new@b.co"})
    assert by_external.json()["email"] == "new@b.co"
    assert by_external.json() == api.get(f"/v1/customers/{customer.pk}").json()
    events = CustomerEvent.objects.filter(customer_id=customer.pk).order_by("created_at")
    assert [event.data["previous_attributes"] for event in events] == [
        {"name": "Before"},
        {"email": "a@b.co"},
    ]


def test_the_external_id_names_the_live_customer(api, scope_a):
    make_customer(scope_a.scope, external_id="same", status="archived", name="Old")
    live = make_customer(scope_a.scope, external_id="same", name="Live")
    assert put(api, "external_customer_id=same", {"name": "Renamed"}).json()["id"] == live.pk


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("", "id"),
        ("id=a&external_customer_id=b", "id"),
        ("id=a&id=b", "id"),
        ("customer=a", "customer"),
    ],
)
def test_exactly_one_of_the_two_names_the_customer(api, query, name):
    response = put(api, query, {"name": "X"})
    assert response.status_code == 400
    assert name in response.json()["error"]["details"]


def test_the_same_rules_and_errors_as_the_update_by_id(api, scope_a, scope_b):
    customer = make_customer(scope_a.scope)
    assert put(api, f"id={customer.pk}", {"address_country": "XX"}).status_code == 400
    assert put(api, f"id={customer.pk}", {"unknown": 1}).status_code == 400
    other = make_customer(scope_b.scope)
    assert put(api, f"id={other.pk}", {"name": "X"}).status_code == 404
    assert put(api, "external_customer_id=nobody", {"name": "X"}).status_code == 404


def test_an_idempotency_key_is_bound_to_the_customer_named_in_the_query(api, scope_a):
    first, second = make_customer(scope_a.scope), make_customer(scope_a.scope)
    body = {"name": "Same"}
    assert put(api, f"id={first.pk}", body, HTTP_IDEMPOTENCY_KEY="k").status_code == 200
    replay = put(api, f"id={first.pk}", body, HTTP_IDEMPOTENCY_KEY="k")
    assert replay["Idempotent-Replayed"] == "true"
    other = put(api, f"id={second.pk}", body, HTTP_IDEMPOTENCY_KEY="k")
    assert other.status_code == 409  # another customer: not the same request
