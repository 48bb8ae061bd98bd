"""Keeps the envelope on `/v1/` errors that happen outside DRF's views.

A URL that matches no route (404), a request Django refuses before a view (400) or a crash
outside a view (500) would otherwise answer with Django's HTML pages, or with a stack trace
when DEBUG is on. Django turns each of those exceptions into a response before this
middleware sees it (and logs the 500s); this replaces the body with the envelope. A query
string too long for the server would get the server's own HTML 414: this answers it first,
in the envelope, below every server's limit.
"""

from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response

from customers.api.errors import error_json_response

API_PREFIX = "/v1/"
# Below every server's own request-line limit (wsgiref and runserver: 64 KiB; gunicorn here:
# none), so that an over-long query string gets the envelope, not the server's HTML 414; and
# above what 1000 ids in one list filter take (32 KiB comma-separated, 52 KiB repeated as
# `parent_customer_ids=...&parent_customer_ids=...`).
MAX_QUERY_STRING_BYTES = 60 * 1024
MESSAGES = {
    400: "the request could not be read",
    403: "permission denied",
    404: "not found",
    405: "method not allowed",
    500: "internal error",
}


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/")


class ApiErrorEnvelopeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request):
            query_length = len(request.META.get("QUERY_STRING", ""))
            if query_length > MAX_QUERY_STRING_BYTES:
                message = f"must be at most {MAX_QUERY_STRING_BYTES} bytes"
                return error_json_response(414, f"query {message}", {"query": [message]})
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api_path(request)
            and not isinstance(response, Response)  # DRF's views answer with the envelope already
        ):
            status = response.status_code
            return error_json_response(status, MESSAGES.get(status, "request failed"))
        return response
