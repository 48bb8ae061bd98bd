"""`GET /v1/customers/export`: every matching customer, streamed as CSV or JSON Lines.

The format is `format=csv` (the default, or `Accept: text/csv`) or `format=jsonl` (or
`Accept: application/x-ndjson`); DRF picks it through the two renderers below, whose only
job is to name those formats (the stream is written by customers.exports). Errors keep
the JSON envelope whatever format was asked for.

On PostgreSQL the database writes each CSV line (``CSVLineText``), as it writes each JSON
line: the same bytes as Python's ``csv`` writer over ``machine_csv_cell`` (a test compares
them for awkward values), at several times the rate (the benchmark: Python's writer, with
each row's timestamps parsed and formatted again, made about a tenth of PostgreSQL's own
COPY of the rows).
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


# Python's csv writer (QUOTE_MINIMAL) quotes a cell holding a comma, a quote, CR or LF.
NEEDS_QUOTES = "'[\",\\r\\n]'"
# A metadata object as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` writes
# the dict psycopg reads from it: its keys in jsonb's order (jsonb_each's), values strings.
COMPACT_METADATA_SQL = (
    "('{{' || COALESCE((SELECT string_agg(to_json(m.key)::text || ':' ||"
    " to_json(m.value)::text, ',' ORDER BY m.ord) FROM jsonb_each_text({value})"
    " WITH ORDINALITY AS m(key, value, ord)), '') || '}}')"
)


QUOTE = "('\"' || replace({cell}, '\"', '\"\"') || '\"')"


class CSVLineText(Expression):
    """A customer as one line of the API's CSV export, written by PostgreSQL: each cell as
    ``machine_csv_cell`` writes it (NULL empty, timestamps in RFC 3339, metadata compact
    JSON), quoted and its quotes doubled as ``csv.writer`` does, CRLF at the end."""

    output_field = TextField()

    def __init__(self):
        super().__init__()
        self.columns = [F(column) for column in ROW_COLUMNS]

    def get_source_expressions(self):
        return self.columns

    def set_source_expressions(self, expressions):
        self.columns = list(expressions)

    def as_sql(self, compiler, connection):
        cells, params = [], []
        for column, value in zip(ROW_COLUMNS, self.columns, strict=True):
            sql, value_params = compiler.compile(value)
            if column in TIMESTAMP_COLUMNS:  # digits, '-', ':', '.', 'T', 'Z': never quoted
                cell = RFC3339_SQL.format(value=sql)
                value_params = list(value_params) * 3
            elif column == "metadata":  # '{}', or an object: quotes inside, so quoted
                compact = COMPACT_METADATA_SQL.format(value=sql)
                cell = (
                    f"(CASE WHEN {sql} = '{{}}'::jsonb THEN '{{}}'"
                    f" ELSE {QUOTE.format(cell=compact)} END)"
                )
                value_params = [*value_params, *value_params]
            else:
                text = f"COALESCE({sql}::text, '')"
                quoted = QUOTE.format(cell=text)
                cell = f"(CASE WHEN {text} ~ {NEEDS_QUOTES} THEN {quoted} ELSE {text} END)"
                value_params = list(value_params) * 3
            cells.append(cell)
            params.extend(value_params)
        return "(" + " || ',' || ".join(cells) + " || chr(13) || chr(10))", params


def csv_lines(queryset):
    """The API's CSV export, header first, in chunks: PostgreSQL writes the lines."""
    header = csv.writer(LineBuffer()).writerow(COLUMNS)
    lines = in_one_snapshot(queryset.annotate(csv_line=CSVLineText()).values_list("csv_line"))
    return chunked((line for (line,) in lines), first=header)


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
