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
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db.models import BooleanField, Expression, F, Q, QuerySet, Value

from customers.filters import NULLABLE_SORT_COLUMNS, SORT_COLUMNS, customer_ordering
from customers.models import Customer
from customers.scope import Scope, TenantScope

SALT = "customers.cursor.v1"
TIMESTAMP_COLUMNS = frozenset({"created_at", "updated_at"})


class CursorError(Exception):
    """A cursor that is malformed, altered, or made for another list; the message says which."""


@dataclass(frozen=True)
class CursorPosition:
    """Where a page ends: its last row's sort value (None for a missing email) and id."""

    value: Any
    id: str


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


def encode_cursor(position: CursorPosition, *, fingerprint: str, sort: str) -> str:
    value = position.value
    if isinstance(value, datetime):
        value = value.isoformat()
    payload = {"f": fingerprint, "v": value, "i": position.id}
    return signing.dumps(payload, salt=SALT, compress=True)


def decode_cursor(
    cursor: str, *, fingerprint: str, sort: str, timestamp: bool | None = None
) -> CursorPosition:
    try:
        payload = signing.loads(cursor, salt=SALT)
    except signing.BadSignature:
        raise CursorError("is not a cursor this API made (malformed or altered)") from None
    if not isinstance(payload, dict) or set(payload) != {"f", "v", "i"}:
        raise CursorError("is not a cursor this API made (malformed or altered)")
    if payload["f"] != fingerprint:
        raise CursorError(
            "was made for another list: the scope, filters, sort and order must be those of"
            " the request that returned it (only limit may change)"
        )
    value = payload["v"]
    if timestamp is None:
        timestamp = SORT_COLUMNS[sort] in TIMESTAMP_COLUMNS
    if timestamp and value is not None:
        value = datetime.fromisoformat(value)
    return CursorPosition(value=value, id=payload["i"])


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


def keyset_ranges(
    queryset: QuerySet, *, sort: str, order: str, after: CursorPosition
) -> list[QuerySet]:
    """The rows after ``after``, as consecutive ranges of ``queryset`` (each in total order).

    Reading them one after the other, until a page is full, gives the page that follows.
    """
    column = SORT_COLUMNS[sort]
    descending = order == "desc"
    ordering = customer_ordering(sort, order)
    ordered = queryset.order_by(*ordering)
    if column not in NULLABLE_SORT_COLUMNS:
        return [ordered.filter(RowComparison(column, after, descending=descending))]
    tie_break = Q(id__lt=after.id) if descending else Q(id__gt=after.id)
    null = Q(**{f"{column}__isnull": True})
    if after.value is None:
        # Among the NULLs: the rest of them, then (descending, NULLs first) every email.
        rest_of_nulls = ordered.filter(null & tie_break)
        if descending:
            return [rest_of_nulls, ordered.filter(~null)]
        return [rest_of_nulls]
    after_value = ordered.filter(RowComparison(column, after, descending=descending))
    if descending:
        return [after_value]
    return [after_value, ordered.filter(null)]  # ascending: the NULLs come last
