"""Streamed exports of a customer queryset: the API's columns, in one consistent snapshot.

Two CSV dialects share one writer: the admin's spreadsheet export neutralises cells that a
spreadsheet would run as formulas (and says so); the API's machine export
(`GET /v1/customers/export`) is lossless instead: an export imported with
``import_customers`` into the same scope of an empty database exports again to the same
bytes. JSON Lines (one customer a line, as the list writes it) is the API's other format.

Rows come from a server-side cursor in chunks (memory stays flat at a million rows); on
PostgreSQL the whole stream reads one REPEATABLE READ snapshot, however long it takes.
"""

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from customers.db_router import rows_with_fallback
from customers.models import Customer
from customers.representation import CUSTOMER_FIELDS, row_as_dict
from customers.selectors import ROW_COLUMNS

# The API's customer fields, in its order.
COLUMNS = CUSTOMER_FIELDS
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_SIZE = 500
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
JSONL_CONTENT_TYPE = "application/x-ndjson; charset=utf-8"


def neutralise(value: str) -> str:
    """Prefix a would-be formula with an apostrophe, so it shows as text."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def csv_cell(value) -> str:
    """A cell of the admin's spreadsheet export: formulas neutralised, {} as empty."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return neutralise(json.dumps(value, ensure_ascii=False, sort_keys=True)) if value else ""
    return neutralise(str(value))


def machine_csv_cell(value) -> str:
    """A cell of the API's export: exactly the value (null as empty, metadata as JSON)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


class LineBuffer:
    """csv.writer writes into this; each row comes straight back as a string."""

    def write(self, line: str) -> str:
        return line


def in_one_snapshot(queryset: QuerySet) -> Iterator:
    """The queryset's rows from a server-side cursor, all from one snapshot, on the database
    it names (a replica that fails before the first row gives way to the primary)."""
    return rows_with_fallback(queryset, snapshot_rows)


def snapshot_rows(queryset: QuerySet) -> Iterator:
    """The queryset's rows from a server-side cursor, all from one snapshot.

    One SELECT reads one snapshot however long its cursor is read, on both databases. On
    PostgreSQL the server-side cursor needs a transaction: a REPEATABLE READ, READ ONLY one
    when the stream starts its own (a request's), so that any further read of the export
    sees the same snapshot too. SQLite streams without one (a transaction there would take
    the write lock, IMMEDIATE, for as long as the client reads).

    The cursor is declared inside that transaction even where DISABLE_SERVER_SIDE_CURSORS
    turns Django's off (PgBouncer's transaction pooling, DATABASE_PGBOUNCER): a transaction
    keeps its one server connection, so the cursor lives where it was declared, and the
    stream stays in chunks instead of the whole result in memory.
    """
    alias = queryset.db
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield from queryset.iterator(chunk_size=CHUNK_SIZE)
        return
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            if outermost:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # A web request's statement timeout (DJANGO_DB_STATEMENT_TIMEOUT) is not for the
            # stream: each FETCH of a chunk is short, but one of a selective filter may scan
            # far, and a stream cut after its first bytes is a truncated file, not a 503.
            # The limit is lifted for this transaction only (SET LOCAL).
            cursor.execute("SET LOCAL statement_timeout = 0")
        # QuerySet.iterator() itself, but always by a cursor (named, not WITH HOLD: inside
        # this transaction), whatever DISABLE_SERVER_SIDE_CURSORS says.
        yield from queryset._iterator(use_chunked_fetch=True, chunk_size=CHUNK_SIZE)


def chunked(lines: Iterable[str], *, first: str = "") -> Iterator[str]:
    """The lines joined about CHUNK_SIZE at a time (one socket write each, not one a line)."""
    chunk = [first] if first else []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK_SIZE:
            yield "".join(chunk)
            chunk = []
    yield "".join(chunk)


def csv_rows(queryset: QuerySet[Customer], *, cell: Callable = csv_cell) -> Iterator[str]:
    """The CSV text (header first) in chunks, with ``cell`` writing each value."""
    writer = csv.writer(LineBuffer())
    rows = in_one_snapshot(queryset.values_list(*ROW_COLUMNS))
    lines = (writer.writerow([cell(value) for value in row_as_dict(row).values()]) for row in rows)
    return chunked(lines, first=writer.writerow(COLUMNS))


def jsonl_rows(lines: Iterable[str]) -> Iterator[str]:
    """JSON Lines from each customer's JSON text, in chunks (U+2028/9 escaped, as the list)."""
    return chunked(
        line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n" for line in lines
    )


def export_filename(*, environment_id: str, extension: str) -> str:
    moment = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"customers-{environment_id}-{moment}.{extension}"


def streamed_attachment(
    chunks: Iterator[str], *, content_type: str, filename: str
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def customers_csv_response(queryset: QuerySet[Customer], *, filename: str) -> StreamingHttpResponse:
    """The admin's spreadsheet export (formulas neutralised)."""
    return streamed_attachment(csv_rows(queryset), content_type=CSV_CONTENT_TYPE, filename=filename)
