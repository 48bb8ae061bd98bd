"""Erasure, for data-protection requests: personal data replaced everywhere it is stored."""

import json

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from customers.models import (
    Customer,
    CustomerEvent,
    CustomerStatusCount,
    IdempotencyRecord,
    ImportJob,
    WebhookAttempt,
    WebhookDelivery,
)
from customers.representation import event_as_dict

pytestmark = pytest.mark.django_db

PERSONAL = {
    "name": "Ada Lovelace Personal",
    "email": "ada.private@example.com",
    "address_line1": "12 Secret Lane",
    "address_line2": "Flat 3b",
    "address_city": "Hiddenville",
    "address_state": "Privateshire",
    "address_postal_code": "PV1 2XY",
    "metadata": {"phone": "+44 7700 900123", "plan": "growth-private"},
}


def send(api, method, path, body=None, **headers):
    data = json.dumps(body) if body is not None else None
    return getattr(api, method)(path, data=data, content_type="application/json", **headers)


@pytest.fixture
def person(api):
    created = send(
        api,
        "post",
        "/v1/customers",
        {"external_id": "person-1", **PERSONAL},
        HTTP_IDEMPOTENCY_KEY="k1",
    ).json()
    send(api, "patch", f"/v1/customers/{created['id']}", {"name": "Ada L. Personal"})
    return created["id"]


def stored_text(customer_id: str) -> str:
    """Every stored value that concerns the customer: its row, its events, the idempotency
    records that would replay it, as one text to search."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM customers_customer WHERE id = %s", [customer_id])
        row = cursor.fetchone()
    events = CustomerEvent.objects.filter(customer_id=customer_id).values_list("data", flat=True)
    records = IdempotencyRecord.objects.values_list("response_body", flat=True)
    return json.dumps([list(map(str, row)), list(events), list(records)], ensure_ascii=False)


def test_erasure_replaces_every_personal_value_everywhere(api, person, scope_a):
    assert "Ada Lovelace Personal" in stored_text(person)  # the search below can find them
    response = send(api, "post", f"/v1/customers/{person}/erase")
    assert response.status_code == 200
    erased = response.json()
    assert erased["id"] == person
    assert erased["external_id"] == "person-1"
    assert erased["status"] == "archived"
    assert erased["name"] == "[erased]"
    assert erased["email"] is None
    assert erased["metadata"] == {"phone": "", "plan": ""}
    assert all(erased[field] == "" for field in PERSONAL if field.startswith("address_"))
    text = stored_text(person)
    for field, value in PERSONAL.items():
        for part in value.values() if isinstance(value, dict) else [value]:
            assert part not in text, field
    assert "Ada L. Personal" not in text
    assert "ada lovelace" not in text.lower()  # the sort and search keys too
    counts = {c.status: c.count for c in CustomerStatusCount.objects.filter(environment_id="env_a")}
    assert counts == {"published": 0, "archived": 1}


def test_the_erased_event_holds_no_personal_value(api, person):
    send(api, "post", f"/v1/customers/{person}/erase")
    event = CustomerEvent.objects.filter(customer_id=person).latest("created_at")
    assert event.type == "customer.erased"
    assert event.data["previous_attributes"] == {}
    assert event.data["object"]["name"] == "[erased]"
    listed = api.get(f"/v1/events?customer_id={person}&type=customer.erased").json()["items"]
    assert [item["id"] for item in listed] == [event.id]


def test_erasing_again_changes_nothing(api, person):
    first = send(api, "post", f"/v1/customers/{person}/erase").json()
    events = CustomerEvent.objects.count()
    second = send(api, "post", f"/v1/customers/{person}/erase")
    assert second.status_code == 200
    assert second.json() == first
    assert CustomerEvent.objects.count() == events


def test_a_replayed_create_returns_the_erased_customer(api, person):
    send(api, "post", f"/v1/customers/{person}/erase")
    replay = send(
        api,
        "post",
        "/v1/customers",
        {"external_id": "person-1", **PERSONAL},
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["name"] == "[erased]"


def test_erasure_is_scoped(api, scope_b):
    other = send(scope_b.client(), "post", "/v1/customers", {"external_id": "x", "name": "Bob"})
    other_id = other.json()["id"]
    response = send(api, "post", f"/v1/customers/{other_id}/erase")
    assert response.status_code == 404
    assert Customer.objects.get(pk=other_id).name == "Bob"


def every_stored_value() -> str:
    """Every value of every row of every table, as one text to search."""
    values = []
    for model in apps.get_models():
        for row in model.objects.values_list():
            values.append([str(value) for value in row])
    return json.dumps(values, ensure_ascii=False)


def test_erasure_leaves_no_personal_value_in_any_table(api, person, scope_a):
    """Beyond the row and its events: what webhook receivers answered (a receiver may echo
    the payload back, and the first KB of each answer is kept) and the admin's change log
    (which names the customer) are scrubbed too."""
    created = send(
        api,
        "post",
        "/v1/webhook_endpoints",
        {"url": "https://hooks.example.com/in", "enabled_events": ["*"]},
    )
    assert created.status_code == 201
    send(api, "patch", f"/v1/customers/{person}", {"address_city": "Hiddenville Again"})
    deliveries = WebhookDelivery.objects.filter(event__customer_id=person)
    assert deliveries.exists()
    for delivery in deliveries:
        echoed = json.dumps(event_as_dict(delivery.event), ensure_ascii=False)[:1000]
        WebhookAttempt.objects.create(
            delivery=delivery, status_code=500, response_excerpt=f"bad payload: {echoed}"
        )
    customer = Customer.objects.get(pk=person)
    LogEntry.objects.create(
        user=get_user_model().objects.create_user("operator"),
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=person,
        object_repr=str(customer),
        action_flag=CHANGE,
        change_message='[{"changed": {"fields": ["Name"]}}]',
    )
    ImportJob.objects.create(
        tenant_id="tenant_a",
        environment_id="env_a",
        created_by_name="operator",
        file_name="customers.csv",
        file_size=100,
        preview=[
            {
                "line": 2,
                "external_id": "person-1",
                "name": "Ada L. Personal",
                "metadata": {"phone": PERSONAL["metadata"]["phone"]},
            },
            {"line": 3, "external_id": "someone-else", "name": "Kept Name"},
        ],
        problems=[
            {"line": 9, "field": "email", "message": f"'{PERSONAL['email']}x' is not valid"},
            {"line": 10, "field": "name", "message": "is required"},
        ],
    )
    before = every_stored_value()
    assert "Hiddenville Again" in before
    assert "Ada L. Personal" in before
    assert send(api, "post", f"/v1/customers/{person}/erase").status_code == 200
    after = every_stored_value()
    for value in [*PERSONAL.values(), "Hiddenville Again", "Ada L. Personal"]:
        for part in value.values() if isinstance(value, dict) else [value]:
            assert part not in after, part
    assert "person-1" in after  # what is kept is still there
    assert "Kept Name" in after
