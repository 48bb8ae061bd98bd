"""`GET /v1/customers/export`: every matching customer, streamed as CSV or JSON Lines.

The format is `format=csv` (the default, or `Accept: text/csv`) or `format=jsonl` (or
`Accept: application/x-ndjson`); DRF picks it through the two renderers below, whose only
job is to name those formats (the stream is written by customers.exports). Errors keep
the JSON envelope whatever format was asked for.

On PostgreSQL the database writes the CSV (COPY ... TO STDOUT (FORMAT csv) of each cell's
text, ``CSVCellText``), as it writes each JSON line: the same bytes as Python's ``csv``
writer over ``machine_csv_cell`` (a test compares them for awkward values), at several
times the rate. (Python's writer, with each row's timestamps parsed and formatted again,
made about a tenth of a plain COPY of the rows; a line built by a SQL expression, its
quoting included, a quarter; the metadata's compact JSON, rebuilt key by key, was most of
what remained, and the CSV now carries the jsonb's own text, ``{"key": "value"}``.)
"""

import csv
import json

from django.db import connection
from django.db.models import Expression, F, TextField
from rest_framework import renderers
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.json_rows import RFC3339_SQL, TIMESTAMP_COLUMNS
from customers.api.presenters import CustomerListPresenter
from customers.db_router import read_database
from customers.exports import (
    COLUMNS,
    CSV_CONTENT_TYPE,
    JSONL_CONTENT_TYPE,
    LineBuffer,
    chunked,
    copied_csv_rows,
    csv_rows,
    export_filename,
    in_one_snapshot,
    jsonl_rows,
    machine_csv_cell,
    streamed_attachment,
)
from customers.representation import row_as_dict
from customers.scope import Scope
from customers.selectors import ROW_COLUMNS

EXPORT_FORMATS = ("csv", "jsonl")


class CSVRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise NotImplementedError("the export streams its own body")


class JSONLinesRenderer(CSVRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


def customer_json_lines(queryset, presenter: CustomerListPresenter):
    """Each customer's JSON, as the list writes it (by the database on PostgreSQL)."""
    rows = in_one_snapshot(presenter.projection(queryset))
    if presenter.database_writes_json:
        return (row[1] for row in rows)
    return (json.dumps(row_as_dict(row), ensure_ascii=False, separators=(",", ":")) for row in rows)


class CSVCellText(Expression):
    """A column as the text of its cell in the API's CSV, for COPY to quote: timestamps in
    RFC 3339, metadata as its jsonb text, and empty text as NULL (COPY writes NULL as an
    empty cell, and an empty string as ``""``, where Python's csv writer writes nothing)."""

    output_field = TextField()

    def __init__(self, column: str):
        super().__init__()
        self.column = column
        self.value = F(column)

    def get_source_expressions(self):
        return [self.value]

    def set_source_expressions(self, expressions):
        (self.value,) = expressions

    def as_sql(self, compiler, connection):
        sql, params = compiler.compile(self.value)
        if self.column in TIMESTAMP_COLUMNS:  # digits, '-', ':', '.', 'T', 'Z'
            return RFC3339_SQL.format(value=sql), list(params)
        return f"NULLIF({sql}::text, '')", list(params)


def csv_lines(queryset):
    """The API's CSV export, header first, in chunks of bytes: PostgreSQL's COPY writes the
    rows (the same bytes as Python's csv writer over ``machine_csv_cell``)."""
    header = csv.writer(LineBuffer()).writerow(COLUMNS).encode()
    cells = {f"csv_{column}": CSVCellText(column) for column in ROW_COLUMNS}
    rows = copied_csv_rows(queryset.annotate(**cells).values_list(*cells))
    return chunked(rows, first=header)


def export_response(*, queryset, scope: Scope, export_format: str):
    # From a replica when one may serve the scope (customers/db_router.py).
    queryset = queryset.using(read_database(scope=scope))
    filename = export_filename(environment_id=scope.environment_id, extension=export_format)
    if export_format == "jsonl":
        lines = customer_json_lines(queryset, CustomerListPresenter(expand_parent=False))
        return streamed_attachment(
            jsonl_rows(lines), content_type=JSONL_CONTENT_TYPE, filename=filename
        )
    if connection.vendor == "postgresql":
        chunks = csv_lines(queryset)
    else:
        chunks = csv_rows(queryset, cell=machine_csv_cell)
    return streamed_attachment(chunks, content_type=CSV_CONTENT_TYPE, filename=filename)


def error_as_json(request: Request, response) -> None:
    """An error answers in the JSON envelope, not in the export format asked for."""
    if isinstance(response, Response) and response.status_code >= 400:
        response.accepted_renderer = renderers.JSONRenderer()
        response.accepted_media_type = "application/json"
        response.renderer_context = {"request": request}
