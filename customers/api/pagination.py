"""The list envelope: `{"items": [...], "pagination": {"total", "limit", "offset"}}`."""

from rest_framework.response import Response

from customers.api.renderers import PreRenderedPage
from customers.selectors import CustomerPage


def paginated_response(page: CustomerPage, items: list[dict]) -> Response:
    return Response(
        {
            "items": items,
            "pagination": {"total": page.total, "limit": page.limit, "offset": page.offset},
        }
    )


def json_page_response(page: CustomerPage) -> Response:
    """The envelope of a page read with customers.api.json_rows: rows are (id, JSON text)."""
    return Response(
        PreRenderedPage(
            items_json=[row[1] for row in page.rows],
            pagination={"total": page.total, "limit": page.limit, "offset": page.offset},
        )
    )
