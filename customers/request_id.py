"""`X-Request-ID`: kept when the caller sends a sane one, made up otherwise, echoed back.

The id travels with the request (``request.request_id``) into the events it causes, so an
integrator can match a change to the call that made it.
"""

import re
import uuid
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
# The id of the request this thread is answering (error bodies carry it), None outside one.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,200}")


def request_id_of(request: HttpRequest) -> str:
    incoming = request.headers.get(HEADER, "")
    return incoming if REQUEST_ID_PATTERN.fullmatch(incoming) else uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_of(request)
        token = current_request_id.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = request.request_id
        return response


def request_id_for(request) -> str | None:
    """The id of a Django or DRF request (None when no middleware gave it one)."""
    request = getattr(request, "_request", request)
    return getattr(request, "request_id", None)
