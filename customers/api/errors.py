"""The one error envelope of every `/v1/` response, and DRF's exception handler producing it.

{"success": false, "error": {"code": ..., "message": ..., "details": {...}}}
"""

import logging
from contextlib import contextmanager
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from customers.request_id import current_request_id

logger = logging.getLogger("customers.api")

ERROR_CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "already_exists",
    413: "request_too_large",
    414: "request_too_large",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def error_body(status: int, message: str, details: dict | None = None) -> dict:
    """The envelope; inside a request it also carries the request's X-Request-ID."""
    code = ERROR_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    error = {"code": code, "message": message, "details": details or {}}
    request_id = current_request_id.get()
    if request_id is not None:
        error["request_id"] = request_id
    return {"success": False, "error": error}


def error_json_response(status: int, message: str, details: dict | None = None) -> JsonResponse:
    return JsonResponse(error_body(status, message, details), status=status)


class ApiError(exceptions.APIException):
    """An API error with a message and, per parameter or field, its messages."""

    def __init__(self, message: str, details: dict[str, list[str]] | None = None):
        self.details = details or {}
        super().__init__(detail=message)


class ApiValidationError(ApiError):
    """A 400 whose details map each parameter or field to its messages."""

    status_code = 400
    default_code = "validation_error"

    def __init__(self, details: dict[str, list[str]]):
        details = {name: [str(m) for m in messages] for name, messages in details.items()}
        first = next(iter(details))
        super().__init__(f"{first} {details[first][0]}", details)


class AlreadyExistsError(ApiError):
    status_code = 409
    default_code = "already_exists"


def flatten_drf_detail(detail) -> str:
    if isinstance(detail, list) and detail:
        return flatten_drf_detail(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return f"{key} {flatten_drf_detail(value)}"
    return str(detail)


def api_exception_handler(exc, context):
    """Every exception a DRF view raises becomes the envelope; never a stack trace."""
    headers = {}
    if isinstance(exc, ApiError):
        return Response(
            error_body(exc.status_code, str(exc.detail), exc.details), status=exc.status_code
        )
    if isinstance(exc, Http404):
        return Response(error_body(404, "not found"), status=404)
    if isinstance(exc, PermissionDenied):
        return Response(error_body(403, "permission denied"), status=403)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        details = {"body": [f"must be at most {limit} bytes"]}
        return Response(error_body(413, f"body must be at most {limit} bytes", details), status=413)
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        details = {"query": [f"must have at most {limit} parameters"]}
        return Response(
            error_body(400, f"query must have at most {limit} parameters", details), status=400
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body(400, "the request could not be read"), status=400)
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        details = exc.detail if isinstance(exc.detail, dict) else {}
        return Response(
            error_body(exc.status_code, flatten_drf_detail(exc.detail), details),
            status=exc.status_code,
            headers=headers,
        )
    if isinstance(exc, OperationalError | InterfaceError):
        # Reported at most once a minute per process, as the outage middleware reports its
        # own 503s: while the database is away every request meets it.
        from customers.outage import outage_log  # it imports this module

        outage_log.failed(context["request"], exc)
        response = Response(
            error_body(503, "the service is unavailable, try again shortly"), status=503
        )
        response._has_been_logged = True  # not once more per request by Django
        return response
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
    else:
        logger.exception("unhandled error in API view")
    return Response(error_body(500, "internal error"), status=500)


@contextmanager
def service_errors_as_api_errors():
    """Turn the services' refusals into the API's 400, 404 and 409."""
    # Imported here: services import selectors and models, which this module must not need.
    from customers.selectors import CustomerNotFoundError, EventNotFoundError
    from customers.services import CustomerConflictError
    from customers.validation import CustomerValidationError

    try:
        yield
    except CustomerValidationError as error:
        raise ApiValidationError(error.errors) from None
    except (CustomerNotFoundError, EventNotFoundError) as error:
        raise exceptions.NotFound(str(error)) from None
    except CustomerConflictError as error:
        raise AlreadyExistsError(str(error), {"external_id": ["already exists"]}) from None
