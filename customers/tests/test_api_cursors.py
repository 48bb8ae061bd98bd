"""Cursor pagination (Part 2): every sort walks the whole list once, cursors are bound and
tamper-evident, and writes during a walk neither repeat nor skip unchanged customers."""

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.cursors import SALT
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db

SORTS = ["created_at", "updated_at", "name", "email", "external_id", "status"]


def page(api, **params) -> dict:
    response = api.get(f"/v1/customers?{urlencode(params)}")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def refused(api, **params) -> dict:
    response = api.get(f"/v1/customers?{urlencode(params)}")
    assert response.status_code == 400, response.content
    return response.json()["error"]


def walk(api, limit: int, **params) -> list[str]:
    """Every id, page after page by cursor, checking each page's pagination."""
    body = page(api, limit=limit, **params)
    ids = [item["id"] for item in body["items"]]
    while body["pagination"]["has_more"]:
        cursor = body["pagination"]["next_cursor"]
        assert cursor
        body = page(api, limit=limit, cursor=cursor, **params)
        assert body["pagination"]["offset"] is None
        ids += [item["id"] for item in body["items"]]
    assert body["pagination"]["next_cursor"] is None
    return ids


@pytest.fixture
def crowd(scope_a, scope_b):
    """Ties in every sort column, missing emails, mixed case, statuses, microseconds."""
    base = at("2024-01-15T10:30:00")
    names = ["alpha", "Alpha", "beta", "Beta", "gamma", "alpha", "Élan", "zeta", "beta", "x"]
    for number in range(23):
        make_customer(
            scope_a.scope,
            external_id=f"ext_{number % 7}_{number}",
            name=names[number % len(names)],
            email=None if number % 4 == 0 else f"{'AB'[number % 2]}{number % 3}@example.com",
            status=["published", "draft", "archived"][number % 3],
            created_at=base + timedelta(microseconds=number // 3),  # ties of three
            updated_at=base + timedelta(days=number % 5),
        )
    make_customer(scope_b.scope)  # another scope: never seen


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_cursor_walk_returns_every_customer_once_in_the_lists_order(api, crowd, sort, order):
    everything = [item["id"] for item in page(api, limit=1000, sort=sort, order=order)["items"]]
    assert len(everything) == 23
    for limit in (1, 4, 7):
        assert walk(api, limit, sort=sort, order=order) == everything


def test_every_page_has_has_more_and_next_cursor_offset_or_not(api, crowd):
    first = page(api, limit=10)["pagination"]
    assert (first["has_more"], first["total"], first["offset"]) == (True, 23, 0)
    by_offset = page(api, limit=10, offset=10)["pagination"]
    assert by_offset["has_more"] is True
    # The cursor of an offset page continues from that page.
    after_offset = page(api, limit=10, cursor=by_offset["next_cursor"])
    assert [item["id"] for item in after_offset["items"]] == [
        item["id"] for item in page(api, limit=10, offset=20)["items"]
    ]
    last = page(api, limit=10, offset=20)["pagination"]
    assert (last["has_more"], last["next_cursor"]) == (False, None)
    assert after_offset["pagination"]["total"] == 23


def test_limit_may_change_from_page_to_page(api, crowd):
    everything = [item["id"] for item in page(api, limit=1000)["items"]]
    first = page(api, limit=5)
    second = page(api, limit=12, cursor=first["pagination"]["next_cursor"])
    assert [item["id"] for item in first["items"] + second["items"]] == everything[:17]


def test_filters_apply_to_cursor_pages_and_the_total_is_exact(api, crowd):
    filters = {"status": "draft", "q": "alpha", "sort": "name", "order": "asc"}
    everything = [item["id"] for item in page(api, limit=1000, **filters)["items"]]
    assert walk(api, 1, **filters) == everything
    first = page(api, limit=1, **filters)
    second = page(api, limit=1, cursor=first["pagination"]["next_cursor"], **filters)
    assert second["pagination"]["total"] == len(everything)


@pytest.mark.parametrize(
    "changed",
    [
        {"sort": "name"},
        {"order": "asc"},
        {"status": "draft"},
        {"q": "alpha"},
        {"created_at[gte]": "2024-01-01"},
        {"metadata[plan]": "growth"},
    ],
)
def test_a_cursor_is_bound_to_its_filters_sort_and_order(api, crowd, changed):
    cursor = page(api, limit=5)["pagination"]["next_cursor"]
    error = refused(api, limit=5, cursor=cursor, **changed)
    assert list(error["details"]) == ["cursor"]
    assert "another list" in error["message"]


def test_a_cursor_is_bound_to_its_scope(api, crowd, scope_a_sandbox):
    for _ in range(3):
        make_customer(scope_a_sandbox.scope)
    cursor = page(api, limit=2)["pagination"]["next_cursor"]
    error = refused(scope_a_sandbox.client(), limit=2, cursor=cursor)
    assert list(error["details"]) == ["cursor"]


def test_an_altered_or_made_up_cursor_is_refused(api, crowd):
    cursor = page(api, limit=5)["pagination"]["next_cursor"]
    altered = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    forged = signing.dumps({"f": "x", "v": None, "i": "cust_x"}, salt="another salt")
    for bad in (altered, forged, "not-a-cursor", "a" * 3000):
        error = refused(api, limit=5, cursor=bad)
        assert list(error["details"]) == ["cursor"], bad
    # Signed with our key but not a cursor's shape.
    odd = signing.dumps(["f", "v", "i"], salt=SALT, compress=True)
    assert list(refused(api, cursor=odd)["details"]) == ["cursor"]


def test_offset_and_cursor_together_are_refused(api, crowd):
    cursor = page(api, limit=5)["pagination"]["next_cursor"]
    error = refused(api, limit=5, offset=5, cursor=cursor)
    assert list(error["details"]) == ["offset"]
    assert "cursor" in error["message"]


def test_an_empty_cursor_is_absent(api, crowd):
    assert page(api, limit=5, cursor="")["pagination"]["offset"] == 0


def test_writes_during_a_walk_neither_repeat_nor_skip_unchanged_customers(api, scope_a, crowd):
    everything = [item["id"] for item in page(api, limit=1000)["items"]]
    first = page(api, limit=8)
    seen = [item["id"] for item in first["items"]]
    # Meanwhile: a newer customer (before the cursor, newest first), an older one (after it),
    # an archived one in the part already read.
    make_customer(scope_a.scope, external_id="newest", created_at=at("2030-01-01T00:00:00"))
    older = make_customer(scope_a.scope, external_id="oldest", created_at=at("2000-01-01T00:00:00"))
    api.delete(f"/v1/customers/{seen[0]}")
    cursor = first["pagination"]["next_cursor"]
    body = page(api, limit=8, cursor=cursor)
    rest = [item["id"] for item in body["items"]]
    while body["pagination"]["has_more"]:
        body = page(api, limit=8, cursor=body["pagination"]["next_cursor"])
        rest += [item["id"] for item in body["items"]]
    walked = seen + rest
    assert len(walked) == len(set(walked))  # nothing twice
    assert walked == [*everything, older.id]  # each unchanged customer exactly once


def test_sorting_by_updated_at_shows_a_changed_customer_again_later(api, scope_a, crowd):
    first = page(api, limit=5, sort="updated_at", order="asc")
    changed = first["items"][0]["id"]
    response = api.patch(
        f"/v1/customers/{changed}",
        data=json.dumps({"name": "Changed"}),
        content_type="application/json",
    )
    assert response.status_code == 200
    body, rest = first, []
    while body["pagination"]["has_more"]:
        cursor = body["pagination"]["next_cursor"]
        body = page(api, limit=5, sort="updated_at", order="asc", cursor=cursor)
        rest += [item["id"] for item in body["items"]]
    assert rest[-1] == changed  # its new updated_at is the latest: what a sync wants


def test_a_cursor_page_costs_the_same_queries_as_an_offset_page(api, crowd):
    cursor = page(api, limit=3)["pagination"]["next_cursor"]
    with CaptureQueriesContext(connection) as by_offset:
        page(api, limit=3, offset=3)
    with CaptureQueriesContext(connection) as by_cursor:
        page(api, limit=3, cursor=cursor)
    # The key, the page, the total; no lookup of the last row's sort value.
    assert len(by_cursor) == len(by_offset) == 3
