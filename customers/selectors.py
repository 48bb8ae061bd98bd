"""Reads. ``customer_list`` is the only place that turns list parameters into a queryset.

The API, the admin pages and the CSV export call these functions; none of them builds its
own customer query.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce

from customers.filters import CustomerFilterSet
from customers.models import Customer, CustomerStatus, CustomerStatusCount
from customers.scope import Scope, TenantScope
from customers.validation import CUSTOMER_ID_PATTERN


class CustomerFilterError(Exception):
    """Raised with ``errors``: parameter name -> list of messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


class CustomerNotFoundError(Exception):
    """No customer with that id (or live external id) in the scope."""


def customers_in_scope(*, scope: Scope | TenantScope) -> QuerySet[Customer]:
    """The base of every customer query: nothing outside the scope is ever reachable."""
    if isinstance(scope, Scope):
        return Customer.objects.filter(
            tenant_id=scope.tenant_id, environment_id=scope.environment_id
        )
    if scope.is_unrestricted:
        return Customer.objects.all()
    return Customer.objects.filter(tenant_id__in=sorted(scope.tenant_ids))


def customer_get(*, scope: Scope, customer_id: str, for_update: bool = False) -> Customer:
    """The customer of ``scope`` with that id, archived or not."""
    customer = None
    if CUSTOMER_ID_PATTERN.fullmatch(customer_id):  # no query for what cannot be an id
        queryset = customers_in_scope(scope=scope)
        if for_update:
            # NO KEY: children being inserted or re-pointed (their FK checks) need not wait.
            queryset = queryset.select_for_update(no_key=True)
        customer = queryset.filter(pk=customer_id).first()
    if customer is None:
        raise CustomerNotFoundError(f"no customer {customer_id!r} in this environment")
    return customer


def customer_get_by_external_id(*, scope: Scope, external_id: str) -> Customer:
    """The non-archived customer of ``scope`` with that external id."""
    customer = (
        customers_in_scope(scope=scope)
        .filter(external_id=external_id)
        .exclude(status=CustomerStatus.ARCHIVED)
        .first()
    )
    if customer is None:
        raise CustomerNotFoundError(
            f"no customer with external_id {external_id!r} in this environment"
        )
    return customer


def customer_filterset(
    *, scope: Scope | TenantScope, filters: Mapping[str, Any]
) -> CustomerFilterSet:
    """The bound FilterSet over ``scope``: the admin shows its form and errors."""
    return CustomerFilterSet(data=filters, queryset=customers_in_scope(scope=scope))


def customer_list(*, scope: Scope | TenantScope, filters: Mapping[str, Any]) -> QuerySet[Customer]:
    """The customers of ``scope`` matching ``filters`` (list parameters), in total order."""
    filterset = customer_filterset(scope=scope, filters=filters)
    if not filterset.is_valid():
        raise CustomerFilterError(filterset.error_details)
    return filterset.qs


@dataclass(frozen=True)
class CustomerPage:
    items: list[Customer]
    total: int
    limit: int
    offset: int


# Filters that the per-status counts can answer; `sort` and `order` narrow nothing.
COUNTABLE_FILTERS = frozenset({"status", "tenant", "environment"})
NON_NARROWING_FILTERS = frozenset({"sort", "order"})


def customer_count(*, scope: Scope | TenantScope, filters: Mapping[str, Any]) -> int:
    """The exact number of customers ``customer_list`` gives for the same arguments.

    When nothing but status (and, in the admin, tenant or environment) narrows the list,
    the answer comes from the per-status counts that every write keeps; otherwise the
    filtered query is counted (the other filters are selective and index-backed).
    """
    filterset = customer_filterset(scope=scope, filters=filters)
    if not filterset.is_valid():
        raise CustomerFilterError(filterset.error_details)
    active = {
        name: value
        for name, value in filterset.form.cleaned_data.items()
        if value not in (None, "", [], ()) and name not in NON_NARROWING_FILTERS
    }
    if set(active) <= COUNTABLE_FILTERS:
        counts = status_counts_in_scope(scope=scope)
        if "status" in active:
            counts = counts.filter(status=active["status"])
        if "tenant" in active:
            counts = counts.filter(tenant_id=active["tenant"])
        if "environment" in active:
            counts = counts.filter(environment_id=active["environment"])
        return counts.aggregate(total=Coalesce(Sum("count"), 0))["total"]
    return filterset.qs.order_by().count()


def status_counts_in_scope(*, scope: Scope | TenantScope) -> QuerySet[CustomerStatusCount]:
    if isinstance(scope, Scope):
        return CustomerStatusCount.objects.filter(
            tenant_id=scope.tenant_id, environment_id=scope.environment_id
        )
    if scope.is_unrestricted:
        return CustomerStatusCount.objects.all()
    return CustomerStatusCount.objects.filter(tenant_id__in=sorted(scope.tenant_ids))


# From this offset on, a page reads the ids first and then only its own rows: the skipped
# entries are walked in the index alone (an index-only scan), not fetched from the table.
DEFERRED_JOIN_OFFSET = 1000


def page_by_ids_first(queryset: QuerySet[Customer], *, offset: int, limit: int) -> list[Customer]:
    ids = list(queryset.values_list("id", flat=True)[offset : offset + limit])
    if not ids:
        return []
    rows = queryset.order_by().filter(pk__in=ids).in_bulk()
    return [rows[customer_id] for customer_id in ids]


def customer_page(
    *,
    scope: Scope,
    filters: Mapping[str, Any],
    limit: int,
    offset: int,
    expand_parent: bool = False,
) -> CustomerPage:
    """One page of ``customer_list`` and the exact number of matching customers.

    The total costs no COUNT when the page itself shows where the list ends: a page that
    is neither empty nor full is the last one.
    """
    queryset = customer_list(scope=scope, filters=filters)
    if expand_parent:
        queryset = queryset.select_related("parent")
    if offset >= DEFERRED_JOIN_OFFSET:
        items = page_by_ids_first(queryset, offset=offset, limit=limit)
    else:
        items = list(queryset[offset : offset + limit])
    if items and len(items) < limit:
        total = offset + len(items)
    elif not items and offset == 0:
        total = 0
    else:
        total = customer_count(scope=scope, filters=filters)
    return CustomerPage(items=items, total=total, limit=limit, offset=offset)
