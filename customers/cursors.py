"""Keyset cursors: the page after a given row, in the list's total order, at constant cost.

A cursor holds the last row's sort value and id, and a fingerprint of what the list was
(scope, filters, sort and order); it is signed (``django.core.signing``, keyed by
SECRET_KEY), so any change to it, or its use with another list, is a 400 naming `cursor`.
Cursors do not expire.

The page after a row is read with a row comparison, ``(sort column, id) > (value, id)``
(``<`` descending), which PostgreSQL answers by starting inside the scope's sort index:
the cost does not grow with the depth. A nullable sort column (`email`) needs two ranges,
since NULLs sort after every email ascending and before them descending: the rows after
the last one are the rest of its range, then the whole other range (``keyset_ranges``).
An order of several keys (the search body's `sort` list) is read the same way, one range
per key from the last to the first.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db.models import BooleanField, Expression, F, Q, QuerySet, Value

from customers.filters import NULLABLE_SORT_COLUMNS, SortKey, customer_ordering
from customers.models import Customer
from customers.scope import Scope, TenantScope

SALT = "customers.cursor.v1"
TIMESTAMP_COLUMNS = frozenset({"created_at", "updated_at"})


class CursorError(Exception):
    """A cursor that is malformed, altered, or made for another list; the message says which."""


@dataclass(frozen=True)
class CursorPosition:
    """Where a page ends: its last row's sort value (None for a missing email), a tuple of
    them for an order of several keys, and its id."""

    value: Any
    id: str

    def values(self, count: int) -> tuple:
        return self.value if count > 1 else (self.value,)


def list_fingerprint(*, scope: Scope | TenantScope, cleaned: dict[str, Any], sort: str, order: str):
    """What a cursor is bound to: the scope, every narrowing filter's value, sort and order."""
    scope_text = str(scope) if isinstance(scope, Scope) else sorted(scope.tenant_ids or ["*"])
    canonical = json.dumps(
        {"scope": scope_text, "filters": cleaned, "sort": sort, "order": order},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def timestamp_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(position: CursorPosition, *, fingerprint: str) -> str:
    value = position.value
    value = [timestamp_text(item) for item in value] if isinstance(value, tuple) else value
    payload = {"f": fingerprint, "v": timestamp_text(value), "i": position.id}
    return signing.dumps(payload, salt=SALT, compress=True)


MALFORMED = "is not a cursor this API made (malformed or altered)"


def decode_cursor(
    cursor: str,
    *,
    fingerprint: str,
    keys: tuple[SortKey, ...] | None = None,
    timestamp: bool = False,
) -> CursorPosition:
    """The position a cursor holds, for the list of ``fingerprint`` ordered by ``keys`` (a
    customer list) or by a timestamp (``timestamp=True``: the event log)."""
    try:
        payload = signing.loads(cursor, salt=SALT)
    except signing.BadSignature:
        raise CursorError(MALFORMED) from None
    if not isinstance(payload, dict) or set(payload) != {"f", "v", "i"}:
        raise CursorError(MALFORMED)
    if payload["f"] != fingerprint:
        raise CursorError(
            "was made for another list: the scope, filters, sort and order must be those of"
            " the request that returned it (only limit may change)"
        )
    if keys is None:
        value = payload["v"]
        if timestamp and value is not None:
            value = datetime.fromisoformat(value)
        return CursorPosition(value=value, id=payload["i"])
    values = payload["v"] if len(keys) > 1 else [payload["v"]]
    if not isinstance(values, list) or len(values) != len(keys):
        raise CursorError(MALFORMED)
    values = tuple(
        datetime.fromisoformat(value)
        if key.column in TIMESTAMP_COLUMNS and value is not None
        else value
        for key, value in zip(keys, values, strict=True)
    )
    return CursorPosition(value=values if len(keys) > 1 else values[0], id=payload["i"])


class RowComparison(Expression):
    """``(column, id) > (value, id)`` (or ``<``): one range of a composite index."""

    output_field = BooleanField()

    def __init__(self, column: str, position: CursorPosition, *, descending: bool, model=Customer):
        super().__init__()
        field = model._meta.get_field(column)
        self.operator = "<" if descending else ">"
        self.expressions = [
            F(column),
            F("id"),
            Value(position.value, output_field=field),
            Value(position.id, output_field=model._meta.pk),
        ]

    def get_source_expressions(self):
        return self.expressions

    def set_source_expressions(self, expressions):
        self.expressions = list(expressions)

    def as_sql(self, compiler, connection):
        compiled = [compiler.compile(expression) for expression in self.expressions]
        sql = [part for part, _ in compiled]
        params = [param for _, part_params in compiled for param in part_params]
        return f"({sql[0]}, {sql[1]}) {self.operator} ({sql[2]}, {sql[3]})", params


def equal_to(key: SortKey, value: Any) -> Q:
    if value is None:
        return Q(**{f"{key.column}__isnull": True})
    return Q(**{key.column: value})


def strictly_after(key: SortKey, value: Any) -> list[Q]:
    """The rows whose ``key`` comes after ``value``, as consecutive ranges in its order:
    NULLs (a missing email) come after every value ascending and before them descending."""
    nullable = key.column in NULLABLE_SORT_COLUMNS
    if value is None:
        return [Q(**{f"{key.column}__isnull": False})] if key.descending else []
    lookup = "lt" if key.descending else "gt"
    ranges = [Q(**{f"{key.column}__{lookup}": value})]
    if nullable and not key.descending:
        ranges.append(Q(**{f"{key.column}__isnull": True}))
    return ranges


def keyset_ranges(
    queryset: QuerySet, *, keys: tuple[SortKey, ...], after: CursorPosition
) -> list[QuerySet]:
    """The rows after ``after``, as consecutive ranges of ``queryset`` (each in total order).

    Reading them one after the other, until a page is full, gives the page that follows:
    first the rows equal to ``after`` on every key with a later id, then those equal on all
    keys but the last and later on it, and so on up to those later on the first key. Where
    the id runs in the last key's direction, the first two are one row comparison
    (``(column, id) > (value, id)``): for the list's one-key orders, one index range.
    """
    values = after.values(len(keys))
    ordered = queryset.order_by(*customer_ordering(keys))
    id_descending = keys[0].descending
    id_after = Q(id__lt=after.id) if id_descending else Q(id__gt=after.id)
    ranges: list[Q] = []
    last = len(keys) - 1
    for level in range(last, -1, -1):
        prefix = Q()
        for key, value in zip(keys[:level], values[:level], strict=True):
            prefix &= equal_to(key, value)
        key, value = keys[level], values[level]
        later = strictly_after(key, value)
        if level == last and key.descending == id_descending and value is not None:
            position = CursorPosition(value=value, id=after.id)
            comparison = RowComparison(key.column, position, descending=key.descending)
            ranges.append(prefix & Q(comparison))
            ranges += [prefix & part for part in later[1:]]
            continue
        if level == last:
            ranges.append(prefix & equal_to(key, value) & id_after)
        ranges += [prefix & part for part in later]
    return [ordered.filter(part) for part in ranges]
