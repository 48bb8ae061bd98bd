"""CSV export of a customer queryset: streamed, the API's columns, safe for spreadsheets."""

import csv
import json
from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from customers.models import Customer
from customers.representation import CUSTOMER_FIELDS, row_as_dict
from customers.selectors import ROW_COLUMNS

# The API's customer fields, in its order.
COLUMNS = CUSTOMER_FIELDS
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_SIZE = 500


def neutralise(value: str) -> str:
    """Prefix a would-be formula with an apostrophe, so it shows as text."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return neutralise(json.dumps(value, ensure_ascii=False, sort_keys=True)) if value else ""
    return neutralise(str(value))


class LineBuffer:
    """csv.writer writes into this; each row comes straight back as a string."""

    def write(self, line: str) -> str:
        return line


def csv_rows(queryset: QuerySet[Customer]) -> Iterator[str]:
    """The CSV text in chunks of about CHUNK_SIZE rows (one socket write each, not one a row)."""
    writer = csv.writer(LineBuffer())
    chunk = [writer.writerow(COLUMNS)]
    # Plain rows (no model instances) from a server-side cursor on PostgreSQL: memory stays
    # flat for a million rows.
    rows = queryset.values_list(*ROW_COLUMNS).iterator(chunk_size=CHUNK_SIZE)
    for row in rows:
        data = row_as_dict(row)
        chunk.append(writer.writerow([csv_cell(data[column]) for column in COLUMNS]))
        if len(chunk) >= CHUNK_SIZE:
            yield "".join(chunk)
            chunk = []
    yield "".join(chunk)


def customers_csv_response(queryset: QuerySet[Customer], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_rows(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
