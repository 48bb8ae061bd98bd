"""Streamed exports of a customer queryset: the API's columns, in one consistent snapshot.

Two CSV dialects share one writer: the admin's spreadsheet export neutralises cells that a
spreadsheet would run as formulas (and says so); the API's machine export
(`GET /v1/customers/export`) is lossless instead: an export imported with
``import_customers`` into the same scope of an empty database exports again to the same
bytes. JSON Lines (one customer a line, as the list writes it) is the API's other format.

Rows come from a server-side cursor in chunks, or on PostgreSQL the API's CSV from COPY
row by row (memory stays flat at a million rows); on PostgreSQL the whole stream reads one
REPEATABLE READ snapshot, however long it takes.
"""

import contextlib
import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import AnyStr

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
    """A cell of the API's export: exactly the value (null as empty, metadata as JSON, as
    PostgreSQL writes a jsonb: `{"key": "value", ...}`, its keys in the order read)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class LineBuffer:
    """csv.writer writes into this; each row comes straight back as a string."""

    def write(self, line: str) -> str:
        return line


def in_one_snapshot(queryset: QuerySet) -> Iterator:
    """The queryset's rows from a server-side cursor, all from one snapshot, on the database
    it names (a replica that fails before the first row gives way to the primary)."""
    return rows_with_fallback(queryset, snapshot_rows)


@contextlib.contextmanager
def export_transaction(alias: str) -> Iterator[None]:
    """On PostgreSQL, what a stream reads in: a REPEATABLE READ, READ ONLY transaction when
    the stream starts its own (a request's), so that every read of the export sees one
    snapshot, with no statement timeout.

    A web request's statement timeout (DJANGO_DB_STATEMENT_TIMEOUT) is not for the stream:
    each FETCH of a chunk is short, but one of a selective filter may scan far, and a stream
    cut after its first bytes is a truncated file, not a 503. The limit is lifted for this
    transaction only (SET LOCAL)."""
    connection = connections[alias]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            if outermost:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET LOCAL statement_timeout = 0")
        yield


def snapshot_rows(queryset: QuerySet) -> Iterator:
    """The queryset's rows from a server-side cursor, all from one snapshot.

    One SELECT reads one snapshot however long its cursor is read, on both databases. On
    PostgreSQL the server-side cursor needs a transaction (``export_transaction``). SQLite
    streams without one (a transaction there would take the write lock, IMMEDIATE, for as
    long as the client reads).

    The cursor is declared inside that transaction even where DISABLE_SERVER_SIDE_CURSORS
    turns Django's off (PgBouncer's transaction pooling, DATABASE_PGBOUNCER): a transaction
    keeps its one server connection, so the cursor lives where it was declared, and the
    stream stays in chunks instead of the whole result in memory.
    """
    alias = queryset.db
    if connections[alias].vendor != "postgresql":
        yield from queryset.iterator(chunk_size=CHUNK_SIZE)
        return
    with export_transaction(alias):
        # QuerySet.iterator() itself, but always by a cursor (named, not WITH HOLD: inside
        # this transaction), whatever DISABLE_SERVER_SIDE_CURSORS says.
        yield from queryset._iterator(use_chunked_fetch=True, chunk_size=CHUNK_SIZE)


def copied_csv_rows(queryset: QuerySet) -> Iterator[bytes]:
    """PostgreSQL only: the queryset's rows as PostgreSQL's own ``COPY ... TO STDOUT
    (FORMAT csv)`` writes them, one row at a time as the server sends them (the protocol
    sends one CopyData message a row), each ended by CRLF instead of COPY's LF; from one
    snapshot (one statement), on the database it names, a replica giving way to the
    primary as for ``in_one_snapshot``. COPY quotes a value holding a comma, a quote, CR or
    LF and doubles its quotes, as Python's csv writer does; it writes NULL as an empty cell
    and an empty string as ``""``, so the queryset gives empty text as NULL."""
    return rows_with_fallback(queryset, copy_rows)


def logged(cursor, sql: str, params) -> contextlib.AbstractContextManager:
    """Django's own logging of a statement (its CursorDebugWrapper), where it logs them."""
    if hasattr(cursor, "debug_sql"):
        return cursor.debug_sql(sql, params)
    return contextlib.nullcontext()


def refuse_while_copying(execute, sql, params, many, context):
    """An execute wrapper for the COPY's connection while it streams: psycopg holds the
    connection's lock for the whole COPY, so any other statement on it (in this thread)
    would wait for the stream's end forever; it is an error instead."""
    raise RuntimeError(
        f"the connection {context['connection'].alias!r} is streaming an export (COPY)"
        " until the stream is read or closed; no other statement can run on it meanwhile"
    )


def copy_rows(queryset: QuerySet) -> Iterator[bytes]:
    alias = queryset.db
    sql, params = queryset.query.get_compiler(using=alias).as_sql()
    statement = f"COPY ({sql}) TO STDOUT (FORMAT csv)"
    # psycopg's own cursor: Django's wrapper has no COPY (where it logs queries, DEBUG or a
    # test's CaptureQueriesContext, the statement is logged as one). A client that goes away
    # closes this generator; psycopg then cancels the COPY and the transaction ends. Until
    # then the connection is the COPY's: a statement of Django's on it is an error.
    with (
        export_transaction(alias),
        connections[alias].cursor() as cursor,
        logged(cursor, statement, params),
        cursor.cursor.copy(statement, params) as copy,
        connections[alias].execute_wrapper(refuse_while_copying),
    ):
        for row in copy:
            yield bytes(row[:-1]) + b"\r\n"


def chunked(lines: Iterable[AnyStr], *, first: AnyStr = "") -> Iterator[AnyStr]:
    """The lines (text, or bytes after a ``first`` of bytes) joined about CHUNK_SIZE at a
    time (one socket write each, not one a line)."""
    empty = first[:0]
    chunk = [first] if first else []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK_SIZE:
            yield empty.join(chunk)
            chunk = []
    yield empty.join(chunk)


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
