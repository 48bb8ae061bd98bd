"""Reads. ``customer_list`` is the only place that turns list parameters into a queryset.

The API, the admin pages and the CSV export call these functions; none of them builds its
own customer query.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F, QuerySet, TextField
from django.db.models.functions import Cast
from django.db.models.query import ModelIterable
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from customers.cursors import (
    CursorError,
    CursorPosition,
    RowComparison,
    decode_cursor,
    encode_cursor,
    keyset_ranges,
    list_fingerprint,
)
from customers.db_router import reads_from_replica
from customers.filters import (
    DEFAULT_ORDER,
    CustomerFilterSet,
    EventFilterSet,
    SortKey,
    StrictFilterSet,
    list_sort_keys,
)
from customers.models import Customer, CustomerEvent, CustomerStatus, CustomerStatusCount
from customers.scope import Scope, TenantScope
from customers.shape import ROW_ATTRIBUTES
from customers.text import abbreviated
from customers.validation import CUSTOMER_ID_PATTERN


class CustomerFilterError(Exception):
    """Raised with ``errors``: parameter name -> list of messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


class CustomerNotFoundError(Exception):
    """No customer with that id (or live external id) in the scope."""


def customers_in_scope(
    *, scope: Scope | TenantScope, using: str = DEFAULT_DB_ALIAS
) -> QuerySet[Customer]:
    """The base of every customer query: nothing outside the scope is ever reachable.
    ``using``: the database alias (a replica, for reads customers.db_router routes)."""
    return scope.confine(Customer.objects.using(using))


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
        raise CustomerNotFoundError(f"no customer {abbreviated(customer_id)!r} in this environment")
    return customer


def live_customers_with_external_id(*, scope: Scope, external_id: str) -> QuerySet[Customer]:
    """The non-archived customers of ``scope`` with that external id (at most one)."""
    return (
        customers_in_scope(scope=scope)
        .filter(external_id=external_id)
        .exclude(status=CustomerStatus.ARCHIVED)
    )


def live_external_id_taken(*, scope: Scope, external_id: str, exclude_id: str | None) -> bool:
    queryset = live_customers_with_external_id(scope=scope, external_id=external_id)
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    return queryset.exists()


def customer_get_by_external_id(*, scope: Scope, external_id: str) -> Customer:
    """The non-archived customer of ``scope`` with that external id."""
    customer = live_customers_with_external_id(scope=scope, external_id=external_id).first()
    if customer is None:
        raise CustomerNotFoundError(
            f"no customer with external_id {abbreviated(external_id)!r} in this environment"
        )
    return customer


def customer_filterset(
    *, scope: Scope | TenantScope, filters: Mapping[str, Any]
) -> CustomerFilterSet:
    """The bound FilterSet over ``scope``: the admin shows its form and errors."""
    return CustomerFilterSet(data=filters, queryset=customers_in_scope(scope=scope))


def valid_filterset(
    *, scope: Scope | TenantScope, filters: Mapping[str, Any], using: str = DEFAULT_DB_ALIAS
) -> CustomerFilterSet:
    """The FilterSet of a read that shows no form (the API, exports): only the parameters
    given are validated (see StrictFilterSet)."""
    filterset = CustomerFilterSet(
        data=filters, queryset=customers_in_scope(scope=scope, using=using), given_only=True
    )
    if not filterset.is_valid():
        raise CustomerFilterError(filterset.error_details)
    return filterset


def customer_list(
    *, scope: Scope | TenantScope, filters: Mapping[str, Any], using: str = DEFAULT_DB_ALIAS
) -> QuerySet[Customer]:
    """The customers of ``scope`` matching ``filters`` (list parameters), in total order."""
    return valid_filterset(scope=scope, filters=filters, using=using).qs


# The columns a list row is read with (model attribute names), in the contract's order.
ROW_COLUMNS = ROW_ATTRIBUTES


def customer_rows(queryset: QuerySet, *extra: str) -> QuerySet:
    """The default projection of a page: values_list of ROW_COLUMNS (led by the id), then
    the ``extra`` columns the selector asks for."""
    return queryset.values_list(*ROW_COLUMNS, *extra)


@dataclass(frozen=True)
class CustomerPage:
    # What the page's projection read for each customer, in order (tuples led by the id).
    rows: list[tuple]
    total: int
    limit: int
    offset: int | None  # None for a page asked for by cursor
    has_more: bool = False  # rows follow this page
    next_cursor: str | None = None  # the cursor of the page that follows, when has_more


# Filters that the per-status counts can answer; `sort` and `order` narrow nothing.
COUNTABLE_FILTERS = frozenset({"status", "tenant", "environment"})
NON_NARROWING_FILTERS = frozenset({"sort", "order"})


def active_filters(filterset: StrictFilterSet) -> dict[str, Any]:
    """The validated filters that narrow the list (not `sort` and `order`)."""
    return {
        name: value
        for name, value in filterset.form.cleaned_data.items()
        if value not in (None, "", [], (), {}) and name not in NON_NARROWING_FILTERS
    }


def count_matching(filterset: CustomerFilterSet, *, scope: Scope | TenantScope) -> int:
    """The exact number of customers a validated FilterSet over ``scope`` matches.

    Takes the FilterSet the page was read with, so a request parses its parameters once.
    When nothing but status (and, in the admin, tenant or environment) narrows the list,
    the answer comes from the per-status counts that every write keeps; otherwise the
    filtered query is counted (the other filters are selective and index-backed).
    """
    active = active_filters(filterset)
    if set(active) <= COUNTABLE_FILTERS:
        return summed_status_counts(
            scope=scope,
            status=active.get("status"),
            tenant_id=active.get("tenant"),
            environment_id=active.get("environment"),
            using=filterset.queryset.db,  # where the page is read (a replica, or the primary)
        )
    return filterset.qs.order_by().count()


# The admin's search counts its matches up to this many and shows more as "1000+".
SEARCH_COUNT_LIMIT = 1000


def count_matching_for_display(
    filterset: CustomerFilterSet, *, scope: Scope | TenantScope, exact: bool = False
) -> tuple[int, bool]:
    """(count, capped): ``count_matching``, except that a search stops counting at
    SEARCH_COUNT_LIMIT and says so (capped=True), unless ``exact`` is asked for.

    A substring search cannot be counted from an index alone: the trigram index only
    proposes candidates, and each is rechecked in its table row, so an exact total of tens
    of thousands of matches reads as many table pages; stopping after SEARCH_COUNT_LIMIT + 1
    reads a few hundred (docs/benchmarks.md measures both). Lists without a search keep
    their exact total, and so does every API list (the contract wants it exact).
    """
    if exact or "q" not in active_filters(filterset):
        return count_matching(filterset, scope=scope), False
    found = filterset.qs.order_by()[: SEARCH_COUNT_LIMIT + 1].count()
    return min(found, SEARCH_COUNT_LIMIT), found > SEARCH_COUNT_LIMIT


def summed_status_counts(
    *,
    scope: Scope | TenantScope,
    status: str | None = None,
    tenant_id: str | None = None,
    environment_id: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """The per-status counts of ``scope`` added up. Plain SQL: this runs on most list
    requests, and compiling the ORM query cost more than the query itself."""
    conditions: list[str] = []
    params: list[str] = []
    if isinstance(scope, Scope):
        conditions += ["tenant_id = %s", "environment_id = %s"]
        params += [scope.tenant_id, scope.environment_id]
    elif not scope.is_unrestricted:
        if not scope.tenant_ids:
            return 0
        conditions.append(f"tenant_id IN ({', '.join(['%s'] * len(scope.tenant_ids))})")
        params += sorted(scope.tenant_ids)
    for column, value in (
        ("status", status),
        ("tenant_id", tenant_id),
        ("environment_id", environment_id),
    ):
        if value:
            conditions.append(f"{column} = %s")
            params.append(value)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    table = CustomerStatusCount._meta.db_table
    with connections[using].cursor() as cursor:
        # The table's name and this function's own conditions; every value is a parameter.
        cursor.execute(f"SELECT COALESCE(SUM(count), 0) FROM {table}{where}", params)  # noqa: S608
        return int(cursor.fetchone()[0])


# From this offset on, a page reads the ids first and then only its own rows: the skipped
# entries are walked in the index alone (an index-only scan), not fetched from the table.
DEFERRED_JOIN_OFFSET = 1000


def page_by_ids_first(queryset: QuerySet, *, offset: int, limit: int, total: int) -> list:
    """A deep page: its ids from the index alone, then only those rows (same order and kind).

    Past the middle of the list the ids are read from the other end, in reverse, so that
    `offset=500000` of 600,000 walks 100,000 index entries rather than 500,000.
    """
    if offset >= total:
        return []
    end = min(offset + limit, total)
    if offset > total // 2:
        ids = list(queryset.reverse().values_list("id", flat=True)[total - end : total - offset])
        ids.reverse()
    else:
        ids = list(queryset.values_list("id", flat=True)[offset:end])
    if not ids:
        return []
    if queryset._iterable_class is ModelIterable:
        by_id = queryset.order_by().filter(pk__in=ids).in_bulk()
    else:  # rows from values_list(), whose first column is the id
        by_id = {row[0]: row for row in queryset.order_by().filter(pk__in=ids)}
    return [by_id[customer_id] for customer_id in ids if customer_id in by_id]


def offset_page(
    queryset: QuerySet, *, offset: int, limit: int, count: Callable[[], int]
) -> tuple[list, int]:
    """(the rows ``offset`` to ``offset + limit`` of ``queryset``, how many rows it has), as
    customer_page reads an offset page: the page and one row more, so that a page showing
    where the list ends (neither empty nor full) gives the total itself and ``count`` is
    called only otherwise; from DEFERRED_JOIN_OFFSET on, ``count`` first, then the ids
    (page_by_ids_first). The admin's change list reads its pages through this."""
    if offset >= DEFERRED_JOIN_OFFSET:
        total = count()
        return page_by_ids_first(queryset, offset=offset, limit=limit, total=total), total
    rows = list(queryset[offset : offset + limit + 1])
    if len(rows) <= limit and (rows or offset == 0):
        return rows, offset + len(rows)
    return rows[:limit], count()


# Each row of a page carries its sort values for the next cursor, as text: only the last
# row's are used, and Django's conversion of a timestamp costs ~3.6 µs a value (4 ms a
# 1000-row page).
CURSOR_KEY = "cursor_key"
TIMESTAMP_SORT_COLUMNS = frozenset({"created_at", "updated_at"})


def with_cursor_keys(queryset: QuerySet, *, keys: tuple[SortKey, ...]) -> tuple[QuerySet, list]:
    """``queryset`` annotated with each key's value ("cursor_key_0", ...), and their names."""
    names, annotations = [], {}
    for index, key in enumerate(keys):
        name = f"{CURSOR_KEY}_{index}"
        names.append(name)
        if key.column in TIMESTAMP_SORT_COLUMNS:
            annotations[name] = Cast(key.column, output_field=TextField())
        else:
            annotations[name] = F(key.column)
    return queryset.annotate(**annotations), names


def cursor_value(value, *, column: str):
    """The last row's sort value as the cursor keeps it (a timestamp read back from text)."""
    if column not in TIMESTAMP_SORT_COLUMNS or value is None:
        return value
    moment = parse_datetime(value)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def fingerprinted_sort(keys: tuple[SortKey, ...]) -> tuple[str, str]:
    """(sort, order) as a cursor binds them: the list's own for one key (so its cursors stay
    valid), every key and direction for several."""
    if len(keys) == 1:
        return keys[0].sort, keys[0].direction
    return ",".join(f"{key.sort}:{key.direction}" for key in keys), ""


@reads_from_replica
def customer_page(
    *,
    scope: Scope,
    filters: Mapping[str, Any],
    limit: int,
    offset: int | None = None,
    cursor: str | None = None,
    projection: Callable[..., QuerySet] = customer_rows,
    bound_to: Mapping[str, Any] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> CustomerPage:
    """One page of ``customer_list``, the exact number of matching customers, and whether
    (and from which cursor) more follow.

    The page starts at ``offset`` or after ``cursor`` (the ``next_cursor`` of the page
    before; a CustomerFilterError naming `cursor` if it is not one for this list).
    ``projection(queryset, *extra)`` turns the filtered, ordered queryset into the rows the
    caller wants: a ``values_list`` whose first column is the id and whose last ones are the
    ``extra`` columns asked for (the sort columns, for the next cursor; they are taken off
    the rows returned). By default the ROW_COLUMNS values. The total costs no COUNT when
    the page itself shows where the list ends. ``bound_to`` is what else the cursors are
    bound to (the saved view the parameters came from). Read from a replica when one may
    serve it (customers.db_router: ``using`` is the alias it chose).
    """
    filterset = valid_filterset(scope=scope, filters=filters, using=using)
    keys = list_sort_keys(filterset.form.cleaned_data)
    sort, order = fingerprinted_sort(keys)
    bound = active_filters(filterset)
    if bound_to:
        bound = {**bound, "(bound to)": dict(bound_to)}
    fingerprint = list_fingerprint(scope=scope, cleaned=bound, sort=sort, order=order)
    if cursor is not None:
        try:
            after = decode_cursor(cursor, fingerprint=fingerprint, keys=keys)
        except CursorError as error:
            raise CustomerFilterError({"cursor": [str(error)]}) from None
        rows: list = []
        for part in keyset_ranges(filterset.qs, keys=keys, after=after):
            annotated, names = with_cursor_keys(part, keys=keys)
            rows += projection(annotated, *names)[: limit + 1 - len(rows)]
            if len(rows) > limit:
                break
        has_more = len(rows) > limit
        rows = rows[:limit]
        total = count_matching(filterset, scope=scope)
        offset = None
    else:
        offset = offset or 0
        annotated, names = with_cursor_keys(filterset.qs, keys=keys)
        rows, total = offset_page(
            projection(annotated, *names),
            offset=offset,
            limit=limit,
            count=lambda: count_matching(filterset, scope=scope),
        )
        has_more = offset + len(rows) < total
    next_cursor = None
    width = len(keys)
    if has_more:
        last = rows[-1]
        values = tuple(
            cursor_value(value, column=key.column)
            for key, value in zip(keys, last[-width:], strict=True)
        )
        position = CursorPosition(value=values if width > 1 else values[0], id=last[0])
        next_cursor = encode_cursor(position, fingerprint=fingerprint)
    return CustomerPage(
        rows=[row[:-width] for row in rows],
        total=total,
        limit=limit,
        offset=offset,
        has_more=has_more,
        next_cursor=next_cursor,
    )


def customer_events(*, scope: Scope, customer_id: str) -> QuerySet[CustomerEvent]:
    """One customer's events, newest first (its history)."""
    events = scope.confine(CustomerEvent.objects.all())
    return events.filter(customer_id=customer_id).order_by("-created_at", "-id")


class EventNotFoundError(Exception):
    """No event with that id in the scope."""


@dataclass(frozen=True)
class EventPage:
    events: list[CustomerEvent]
    limit: int
    has_more: bool
    next_cursor: str | None


EVENT_CURSOR_SORT = "events:created_at"  # what an event cursor is bound to, beside filters


@reads_from_replica
def event_page(
    *,
    scope: Scope,
    filters: Mapping[str, Any],
    limit: int,
    cursor: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> EventPage:
    """A page of the scope's event log, newest first (or oldest, `order=asc`), by cursor:
    the log is large, so there is no offset and no total. From a replica when one may."""
    filterset = EventFilterSet(
        data=filters, queryset=scope.confine(CustomerEvent.objects.using(using)), given_only=True
    )
    if not filterset.is_valid():
        raise CustomerFilterError(filterset.error_details)
    order = filterset.form.cleaned_data.get("order") or DEFAULT_ORDER
    fingerprint = list_fingerprint(
        scope=scope, cleaned=active_filters(filterset), sort=EVENT_CURSOR_SORT, order=order
    )
    queryset = filterset.qs
    if cursor is not None:
        try:
            after = decode_cursor(cursor, fingerprint=fingerprint, timestamp=True)
        except CursorError as error:
            raise CustomerFilterError({"cursor": [str(error)]}) from None
        queryset = queryset.filter(
            RowComparison("created_at", after, descending=order == "desc", model=CustomerEvent)
        )
    events = list(queryset[: limit + 1])
    has_more = len(events) > limit
    events = events[:limit]
    next_cursor = None
    if has_more:
        last = events[-1]
        next_cursor = encode_cursor(
            CursorPosition(value=last.created_at, id=last.id), fingerprint=fingerprint
        )
    return EventPage(events=events, limit=limit, has_more=has_more, next_cursor=next_cursor)


@reads_from_replica
def event_get(*, scope: Scope, event_id: str, using: str = DEFAULT_DB_ALIAS) -> CustomerEvent:
    event = scope.confine(CustomerEvent.objects.using(using)).filter(pk=event_id).first()
    if event is None:
        raise EventNotFoundError(f"no event {abbreviated(event_id)!r} in this environment")
    return event
