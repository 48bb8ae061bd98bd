"""`GET /v1/events` and `GET /v1/events/{id}`: the scope's change log, by cursor, strict."""

import json
from datetime import timedelta
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from customers.models import CustomerEvent
from customers.shape import FIELD_NAMES

pytestmark = pytest.mark.django_db


def send(api, method: str, path: str, body=None):
    data = json.dumps(body) if body is not None else None
    response = getattr(api, method)(path, data=data, content_type="application/json")
    assert response.status_code < 300, response.content
    return response.json() if response.content else None


def events(api, **params) -> dict:
    response = api.get(f"/v1/events?{urlencode(params, doseq=True)}")
    assert response.status_code == 200, response.content
    return response.json()


def refused(api, query: str) -> dict:
    response = api.get(f"/v1/events?{query}")
    assert response.status_code == 400, response.content
    return response.json()["error"]


@pytest.fixture
def history(api, scope_b):
    """In scope A: create two customers, rename one, archive it, restore it."""
    first = send(api, "post", "/v1/customers", {"external_id": "e1", "name": "One"})
    second = send(api, "post", "/v1/customers", {"external_id": "e2", "name": "Two"})
    send(api, "patch", f"/v1/customers/{first['id']}", {"name": "One renamed"})
    send(api, "delete", f"/v1/customers/{first['id']}")
    send(api, "patch", f"/v1/customers/{first['id']}", {"status": "draft"})
    send(scope_b.client(), "post", "/v1/customers", {"external_id": "b1", "name": "Elsewhere"})
    return first["id"], second["id"]


def test_the_log_is_newest_first_in_the_contracts_shape(api, history):
    first, _ = history
    body = events(api)
    assert list(body) == ["items", "pagination"]
    assert body["pagination"] == {"limit": 50, "has_more": False, "next_cursor": None}
    types = [item["type"] for item in body["items"]]
    assert types == [
        "customer.restored",
        "customer.archived",
        "customer.updated",
        "customer.created",
        "customer.created",
    ]
    latest = body["items"][0]
    assert list(latest) == [
        "id",
        "type",
        "created_at",
        "tenant_id",
        "environment_id",
        "actor",
        "request_id",
        "data",
    ]
    assert latest["id"].startswith("evt_")
    assert latest["created_at"].endswith("Z")
    assert latest["actor"]["type"] == "api_key"
    assert latest["request_id"]
    assert list(latest["data"]["object"]) == list(FIELD_NAMES)
    assert latest["data"]["object"]["id"] == first
    assert latest["data"]["previous_attributes"] == {"status": "archived"}
    assert api.get(f"/v1/customers/{first}").json() == latest["data"]["object"]


def test_order_asc_is_oldest_first(api, history):
    body = events(api, order="asc")
    assert [item["type"] for item in body["items"]][:2] == ["customer.created"] * 2


def test_filters_by_type_customer_and_time(api, history):
    _, second = history
    assert len(events(api, type="customer.created")["items"]) == 2
    both = events(api, type="customer.archived,customer.restored")["items"]
    assert [item["type"] for item in both] == ["customer.restored", "customer.archived"]
    repeated = events(api, type=["customer.archived", "customer.restored"])["items"]
    assert repeated == both
    assert [item["type"] for item in events(api, customer_id=second)["items"]] == [
        "customer.created"
    ]
    later = (timezone.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert events(api, **{"created_at[gt]": later})["items"] == []
    assert len(events(api, **{"created_at[lte]": later})["items"]) == 5


def test_a_cursor_walk_returns_every_event_once(api, history):
    everything = [item["id"] for item in events(api)["items"]]
    body, walked = events(api, limit=2), []
    walked += [item["id"] for item in body["items"]]
    while body["pagination"]["has_more"]:
        body = events(api, limit=2, cursor=body["pagination"]["next_cursor"])
        walked += [item["id"] for item in body["items"]]
    assert walked == everything


def test_an_event_cursor_is_bound_to_its_filters_and_order(api, history):
    cursor = events(api, limit=1)["pagination"]["next_cursor"]
    assert list(refused(api, f"limit=1&order=asc&cursor={cursor}")["details"]) == ["cursor"]
    assert list(refused(api, f"type=customer.created&cursor={cursor}")["details"]) == ["cursor"]
    customer_cursor = api.get("/v1/customers?limit=1").json()["pagination"]["next_cursor"]
    assert list(refused(api, f"cursor={customer_cursor}")["details"]) == ["cursor"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("offset=0", "offset"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("type=customer.deleted", "type"),
        ("customer_id=a&customer_id=b", "customer_id"),
        ("created_at[gte]=yesterday", "created_at[gte]"),
        ("updated_at[gte]=2024-01-01", "updated_at[gte]"),
        ("sort=created_at", "sort"),
        ("cursor=forged", "cursor"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(api, history, query, name):
    assert name in refused(api, query)["details"]


def test_events_are_confined_to_the_scope(api, history, scope_b):
    mine = events(api)["items"]
    theirs = events(scope_b.client())["items"]
    assert {item["environment_id"] for item in mine} == {"env_a"}
    assert [item["type"] for item in theirs] == ["customer.created"]
    assert api.get(f"/v1/events/{theirs[0]['id']}").status_code == 404
    assert api.get(f"/v1/events/{mine[0]['id']}").json() == mine[0]
    assert api.get("/v1/events/evt_unknown").json()["error"]["code"] == "not_found"


def test_purge_events_keeps_thirty_days_at_least(api, history):
    old = CustomerEvent.objects.order_by("created_at").first()
    CustomerEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    with pytest.raises(CommandError, match="at least 30 days"):
        call_command("purge_events", "--older-than-days", "7")
    out = StringIO()
    call_command("purge_events", "--older-than-days", "30", stdout=out)
    assert "Deleted 1 events" in out.getvalue()
    assert not CustomerEvent.objects.filter(pk=old.pk).exists()
    assert CustomerEvent.objects.count() == 5
