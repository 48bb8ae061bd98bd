"""A database that cannot be reached: a 503, never a 500 or a hang; and the request timeout.

DRF's views already answer `503 service_unavailable` for a database error
(customers/api/errors.py): the key lookup runs inside the view. Everything else that meets
the database (an admin page reading its session, a template's context processor, a
middleware saving the session) would be Django's 500 page. ``DatabaseUnavailableMiddleware``
answers those with a 503: the error envelope on `/v1/`, a plain page elsewhere (no template,
whose context processors would ask the database again). A view's error is caught by
``process_exception``; one raised by another middleware is noted by Django's
``got_request_exception`` signal and the 500 it became is replaced on the way out.

How fast "cannot be reached" is known: connection refused is at once; a server that accepts
and never answers takes the connect timeout (`DJANGO_DB_CONNECT_TIMEOUT`, 2 s in
production). When the database is back nothing needs restarting: a connection that broke is
closed at the end of its request (Django closes connections with errors that fail
``is_usable``), persistent connections are checked before each request reuses them
(`CONN_HEALTH_CHECKS`), and the pool (`DJANGO_DB_POOL_SIZE`) checks each before handing it
out.

`DJANGO_DB_STATEMENT_TIMEOUT` (``settings.DB_REQUEST_STATEMENT_TIMEOUT_MS``) is set on each
connection a process serving requests opens (`SET statement_timeout`, once per connection,
not per request): this middleware is loaded by the WSGI handler only, so management
commands (migrate, imports, workers), whose statements may rightly run for minutes, never
get it. A statement past it is cancelled by PostgreSQL (`QueryCanceled`, an
OperationalError: the same 503). A streamed export lifts it inside its own transaction
(customers/exports.py): its stream may last minutes, and a cut one is a truncated file.
"""

import logging
import sys
import threading
import time
import weakref

from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse

from customers.api.errors import error_json_response
from customers.api.middleware import is_api_path

logger = logging.getLogger("customers.outage")

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
API_MESSAGE = "the service is unavailable, try again shortly"
PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8>"
    "<title>Service unavailable</title></head><body><h1>Service unavailable</h1>"
    "<p>The database cannot be reached right now. Try again in a moment.</p></body></html>"
)
RETRY_AFTER_SECONDS = "5"
# Set on a request that met an unreachable database, whichever layer it was in.
MARK = "_crm_database_unavailable"
# One log line per process at most this often while the database stays away.
LOG_INTERVAL_SECONDS = 60.0


class OutageLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.logged_at: float | None = None
        self.unlogged = 0

    def failed(self, request: HttpRequest, error: Exception) -> None:
        now = time.monotonic()
        with self.lock:
            self.unlogged += 1
            if self.logged_at is not None and now - self.logged_at < LOG_INTERVAL_SECONDS:
                return
            self.logged_at, count, self.unlogged = now, self.unlogged, 0
        # The error's class only: its message may quote the connection's parameters.
        logger.error(
            "database unavailable (%s) answering %s %s: 503; %d request(s) answered 503 since"
            " the last report (reported at most once a minute)",
            type(error).__name__,
            request.method,
            request.path,
            count,
        )


outage_log = OutageLog()


def unavailable_response(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        response = error_json_response(503, API_MESSAGE)
    else:
        response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = RETRY_AFTER_SECONDS
    response._has_been_logged = True  # logged by OutageLog, not once per request by Django
    return response


def note_request_exception(sender, request=None, **kwargs) -> None:
    """Django's `got_request_exception`: sent inside the `except` that makes the 500."""
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, DATABASE_UNAVAILABLE):
        setattr(request, MARK, True)
        outage_log.failed(request, error)


# Connections given their statement timeout already (a pool hands the same one out again).
timed_connections: "weakref.WeakSet" = weakref.WeakSet()


def limit_request_statements(sender, connection, **kwargs) -> None:
    milliseconds = int(getattr(settings, "DB_REQUEST_STATEMENT_TIMEOUT_MS", 0))
    if milliseconds <= 0 or connection.vendor != "postgresql":
        return
    if getattr(settings, "DATABASE_PGBOUNCER", False):
        # Transaction pooling: a session's SET would land on whichever server connection
        # runs it, and stay there for other clients. Set PgBouncer's `query_timeout` (or
        # the role's statement_timeout) instead.
        return
    raw = connection.connection
    if raw in timed_connections:
        return
    with raw.cursor() as cursor:  # autocommit: the setting lasts for the session
        cursor.execute(f"SET statement_timeout = {milliseconds}")
    timed_connections.add(raw)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        got_request_exception.connect(
            note_request_exception, dispatch_uid="customers.outage.note_request_exception"
        )
        connection_created.connect(
            limit_request_statements, dispatch_uid="customers.outage.limit_request_statements"
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, MARK, False) and response.status_code >= 500:
            return unavailable_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        setattr(request, MARK, True)
        outage_log.failed(request, exception)
        return unavailable_response(request)
