"""Reads. ``customer_list`` is the only place that turns list parameters into a queryset.

The API, the admin pages and the CSV export call these functions; none of them builds its
own customer query.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from customers.filters import CustomerFilterSet
from customers.models import Customer
from customers.scope import Scope


class CustomerFilterError(Exception):
    """Raised with ``errors``: parameter name -> list of messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


def customers_in_scope(*, scope: Scope) -> QuerySet[Customer]:
    return Customer.objects.filter(tenant_id=scope.tenant_id, environment_id=scope.environment_id)


def customer_list(*, scope: Scope, filters: Mapping[str, Any]) -> QuerySet[Customer]:
    """The customers of ``scope`` matching ``filters`` (list parameters), in total order."""
    filterset = CustomerFilterSet(data=filters, queryset=customers_in_scope(scope=scope))
    if not filterset.is_valid():
        raise CustomerFilterError(filterset.error_details)
    return filterset.qs


@dataclass(frozen=True)
class CustomerPage:
    items: list[Customer]
    total: int
    limit: int
    offset: int


def customer_count(*, queryset: QuerySet[Customer]) -> int:
    return queryset.order_by().count()


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
    items = list(queryset[offset : offset + limit])
    if items and len(items) < limit:
        total = offset + len(items)
    elif not items and offset == 0:
        total = 0
    else:
        total = customer_count(queryset=queryset)
    return CustomerPage(items=items, total=total, limit=limit, offset=offset)
