"""Log lines that name their request: the request-id filter and the JSON formatters.

``RequestIdFilter`` puts the request's `X-Request-ID` on every record as ``request_id``
(None outside a request): from ``customers.request_id``'s context variable while the request
is answered, or from the request that Django's own `django.request` lines carry (Django
writes those after the outermost middleware, ``RequestIdMiddleware``, has returned).

``JsonFormatter`` writes one JSON object a line (python-json-logger, which escapes every
value and serialises exceptions, dates and a record's extra fields):
``{"time", "level", "logger", "message", "request_id", ...extras, "exc_info"}``.
``GunicornLogger`` gives gunicorn's error and access logs the same shape; an access line
carries the method, path, status, duration and the response's `X-Request-ID`.
"""

import logging

from gunicorn import glogging
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from customers.request_id import current_request_id, request_id_for

FIELDS = ["levelname", "name", "message", "request_id"]
RENAMED = {"levelname": "level", "name": "logger"}
# Not written out: the request object of Django's `django.request` lines (its repr says
# nothing the other fields do not) and the preformatted time of `django.server`'s.
NOT_WRITTEN = [*RESERVED_ATTRS, "request", "server_time"]


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id.get()
            if request_id is None and hasattr(record, "request"):
                request_id = request_id_for(record.request)
            record.request_id = request_id
        return True


class JsonFormatter(BaseJsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", RENAMED)
        kwargs.setdefault("reserved_attrs", NOT_WRITTEN)
        super().__init__(FIELDS, *args, **kwargs)

    def process_log_record(self, log_data):
        """The time first, where a reader's eye starts."""
        return {"time": log_data.pop("time", None), **log_data}


class TextFormatter(logging.Formatter):
    """A readable line (development): `INFO customers.api [<request id> or -] message`."""

    def __init__(self):
        super().__init__("%(levelname)s %(name)s [%(request_id_text)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id_text = getattr(record, "request_id", None) or "-"
        return super().format(record)


# gunicorn's access-log atoms written out, by their JSON names (`{x-request-id}o` is the
# response's header, which RequestIdMiddleware set).
ACCESS_FIELDS = {
    "method": "m",
    "path": "U",
    "query": "q",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "remote_addr": "h",
    "user_agent": "a",
    "referer": "f",
    "request_id": "{x-request-id}o",
}


class AccessAtoms(glogging.SafeAtoms):
    """gunicorn's atoms (a missing one is `-`, headers in any case) with their values as they
    are: gunicorn's own wrapper escapes `"` for its quoted text format, JSON escapes here."""

    def __init__(self, atoms):
        dict.__init__(self, atoms)


class GunicornAccessJsonFormatter(JsonFormatter):
    """gunicorn logs each request with its atoms as the record's args."""

    def add_fields(self, log_data, record, message_dict):
        super().add_fields(log_data, record, message_dict)
        atoms = record.args if isinstance(record.args, AccessAtoms) else AccessAtoms({})
        for name, atom in ACCESS_FIELDS.items():
            value = atoms[atom]
            log_data[name] = None if value in (None, "-") else value
        if isinstance(log_data["status"], str) and log_data["status"].isdigit():
            log_data["status"] = int(log_data["status"])
        log_data["message"] = f"{log_data['method']} {log_data['path']} {log_data['status']}"


class GunicornLogger(glogging.Logger):
    """gunicorn's logger with JSON lines (gunicorn.conf.py's `logger_class`): the handlers
    gunicorn sets up from `errorlog` and `accesslog` keep their streams and files."""

    atoms_wrapper_class = AccessAtoms

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        for handler in self.access_log.handlers:
            handler.setFormatter(GunicornAccessJsonFormatter())
