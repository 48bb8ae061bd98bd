"""The read path on its own: scope, the one list query, pages and their totals."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import IdempotencyRecord
from customers.scope import Scope, TenantScope
from customers.selectors import (
    DEFERRED_JOIN_OFFSET,
    CustomerFilterError,
    CustomerNotFoundError,
    count_matching,
    customer_filterset,
    customer_get,
    customer_get_by_external_id,
    customer_list,
    customer_page,
    customers_in_scope,
    page_by_ids_first,
)
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db


def ids(rows) -> list[str]:
    return [row[0] for row in rows]


def test_customers_in_scope_confines_to_one_environment_or_to_tenants(
    scope_a, scope_a_sandbox, scope_b
):
    in_a = make_customer(scope_a.scope)
    in_sandbox = make_customer(scope_a_sandbox.scope)
    in_b = make_customer(scope_b.scope)
    assert set(customers_in_scope(scope=scope_a.scope).values_list("id", flat=True)) == {in_a.id}
    tenant_a = TenantScope(tenant_ids=frozenset({"tenant_a"}))
    assert set(customers_in_scope(scope=tenant_a).values_list("id", flat=True)) == {
        in_a.id,
        in_sandbox.id,
    }
    assert not customers_in_scope(scope=TenantScope(tenant_ids=frozenset())).exists()
    everyone = customers_in_scope(scope=TenantScope(tenant_ids=None))
    assert set(everyone.values_list("id", flat=True)) == {in_a.id, in_sandbox.id, in_b.id}


def test_customer_list_filters_and_orders_totally(scope_a):
    same_time = at("2024-01-01T00:00:00")
    first = make_customer(scope_a.scope, name="x", created_at=same_time)
    second = make_customer(scope_a.scope, name="x", created_at=same_time)
    make_customer(scope_a.scope, status="draft")
    listed = customer_list(scope=scope_a.scope, filters={"status": "published"})
    # Same created_at: the id breaks the tie, in the same direction (desc by default).
    assert list(listed.values_list("id", flat=True)) == sorted([first.id, second.id])[::-1]


def test_an_invalid_filter_is_an_error_naming_it(scope_a):
    with pytest.raises(CustomerFilterError) as caught:
        customer_list(scope=scope_a.scope, filters={"status": "active"})
    assert list(caught.value.errors) == ["status"]


def test_get_is_scoped_and_by_external_id_finds_only_the_live_one(scope_a, scope_b):
    archived = make_customer(scope_a.scope, external_id="e", status="archived")
    live = make_customer(scope_a.scope, external_id="e")
    assert customer_get(scope=scope_a.scope, customer_id=archived.id) == archived
    assert customer_get_by_external_id(scope=scope_a.scope, external_id="e") == live
    with pytest.raises(CustomerNotFoundError):
        customer_get(scope=scope_b.scope, customer_id=live.id)
    with pytest.raises(CustomerNotFoundError):
        customer_get(scope=scope_a.scope, customer_id="not an id!")


def test_a_short_last_page_needs_no_count(scope_a):
    for _ in range(3):
        make_customer(scope_a.scope)
    with CaptureQueriesContext(connection) as queries:
        page = customer_page(scope=scope_a.scope, filters={}, limit=10, offset=0)
    assert page.total == 3
    assert len(queries) == 1  # the page itself said where the list ends
    assert not any("COUNT(" in query["sql"].upper() for query in queries)


def test_a_full_page_takes_the_total_from_the_status_counts(scope_a):
    for _ in range(3):
        make_customer(scope_a.scope)
    with CaptureQueriesContext(connection) as queries:
        page = customer_page(scope=scope_a.scope, filters={}, limit=2, offset=0)
    assert (page.total, len(page.rows)) == (3, 2)
    assert not any("COUNT(" in query["sql"].upper() for query in queries)


def test_a_narrowing_filter_counts_the_matches(scope_a):
    make_customer(scope_a.scope, email="a@example.com")
    make_customer(scope_a.scope, email="A@example.com")
    make_customer(scope_a.scope, email="b@example.com")
    filterset = customer_filterset(scope=scope_a.scope, filters={"email": "a@EXAMPLE.com"})
    assert filterset.is_valid()
    assert count_matching(filterset, scope=scope_a.scope) == 2


def test_deep_pages_read_ids_first_and_match_plain_slicing(scope_a, monkeypatch):
    monkeypatch.setattr("customers.selectors.DEFERRED_JOIN_OFFSET", 2)
    for _ in range(7):
        make_customer(scope_a.scope)
    everything = ids(customer_page(scope=scope_a.scope, filters={}, limit=100, offset=0).rows)
    for offset in (2, 3, 5, 6, 7, 9):
        page = customer_page(scope=scope_a.scope, filters={}, limit=2, offset=offset)
        assert ids(page.rows) == everything[offset : offset + 2], offset
        assert page.total == 7
    assert DEFERRED_JOIN_OFFSET >= 1000  # the real threshold, patched above


def test_page_by_ids_first_from_the_far_end(scope_a):
    for _ in range(5):
        make_customer(scope_a.scope)
    queryset = customer_list(scope=scope_a.scope, filters={}).values_list("id", "name")
    expected = list(queryset)
    # offset 3 of 5 is past the middle: read from the other end, in reverse, then turned.
    assert page_by_ids_first(queryset, offset=3, limit=2, total=5) == expected[3:5]
    assert page_by_ids_first(queryset, offset=5, limit=2, total=5) == []


def test_a_projection_chooses_the_rows(scope_a):
    customer = make_customer(scope_a.scope, name="Projected")
    page = customer_page(
        scope=scope_a.scope,
        filters={},
        limit=10,
        offset=0,
        projection=lambda queryset, *extra: queryset.values_list("id", "name", *extra),
    )
    assert page.rows == [(customer.id, "Projected")]


def test_scope_confine_is_the_same_filter_for_any_model(scope_a):
    scope = Scope(tenant_id="tenant_a", environment_id="env_a")
    sql = str(scope.confine(IdempotencyRecord.objects.all()).query)
    assert '"tenant_id" = tenant_a' in sql
    assert '"environment_id" = env_a' in sql
