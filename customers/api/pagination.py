"""The list envelope: `{"items": [...], "pagination": {"total", "limit", "offset"}}`."""

from rest_framework.response import Response

from customers.selectors import CustomerPage


def paginated_response(page: CustomerPage, items: list[dict]) -> Response:
    return Response(
        {
            "items": items,
            "pagination": {"total": page.total, "limit": page.limit, "offset": page.offset},
        }
    )
