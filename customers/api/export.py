"""`GET /v1/customers/export`: every matching customer, streamed as CSV or JSON Lines.

The format is `format=csv` (the default, or `Accept: text/csv`) or `format=jsonl` (or
`Accept: application/x-ndjson`); DRF picks it through the two renderers below, whose only
job is to name those formats (the stream is written by customers.exports). Errors keep
the JSON envelope whatever format was asked for.
"""

import json

from rest_framework import renderers
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.presenters import CustomerListPresenter
from customers.exports import (
    CSV_CONTENT_TYPE,
    JSONL_CONTENT_TYPE,
    csv_rows,
    export_filename,
    in_one_snapshot,
    jsonl_rows,
    machine_csv_cell,
    streamed_attachment,
)
from customers.representation import row_as_dict
from customers.scope import Scope

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


def export_response(*, queryset, scope: Scope, export_format: str):
    filename = export_filename(environment_id=scope.environment_id, extension=export_format)
    if export_format == "jsonl":
        lines = customer_json_lines(queryset, CustomerListPresenter(expand_parent=False))
        return streamed_attachment(
            jsonl_rows(lines), content_type=JSONL_CONTENT_TYPE, filename=filename
        )
    return streamed_attachment(
        csv_rows(queryset, cell=machine_csv_cell), content_type=CSV_CONTENT_TYPE, filename=filename
    )


def error_as_json(request: Request, response) -> None:
    """An error answers in the JSON envelope, not in the export format asked for."""
    if isinstance(response, Response) and response.status_code >= 400:
        response.accepted_renderer = renderers.JSONRenderer()
        response.accepted_media_type = "application/json"
        response.renderer_context = {"request": request}
