"""The API's one body parser: JSON that is valid Unicode text, at most MAX_DEPTH levels deep.

Every string of the body, keys included, is checked once here (``customers.text``): a NUL
byte or a lone surrogate (``"\\udfff"``, which JSON allows and UTF-8 cannot write) is a 400
naming the top-level field that holds it, before any view, idempotency record or query
sees it. A body nested deeper than a customer ever needs is a 400 naming the body, never
Python's RecursionError.
"""

import json

from django.conf import settings
from rest_framework import parsers

from customers.api.errors import ApiValidationError
from customers.text import text_problem

MAX_DEPTH = 32


def body_error(message: str, field: str = "body") -> ApiValidationError:
    return ApiValidationError({field: [message]})


def check_body(data) -> None:
    """Raise for the first string that may not enter, or for nesting past MAX_DEPTH.

    Iterative (a stack, not recursion), so a deep body costs no Python frames.
    """
    # (value, depth, the top-level field it sits under, or None at the top)
    stack = [(data, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if depth > MAX_DEPTH:
            raise body_error(f"must not be nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise body_error(problem, field or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem:
                    where = f"field names {problem}" if field is None else f"keys {problem}"
                    raise body_error(where, field or "body")
                stack.append((item, depth + 1, key if field is None else field))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, field) for item in value)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the checks above; malformed JSON is a 400 naming the body."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise body_error(f"must be valid {encoding} text") from None
        try:
            data = json.loads(text, parse_constant=reject_constant)
        except RecursionError:
            raise body_error(f"must not be nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as error:
            raise body_error(f"must be valid JSON ({error})") from None
        check_body(data)
        return data


def reject_constant(name: str):
    # NaN and Infinity are not JSON (RFC 8259), though Python's json accepts them.
    raise ValueError(f"{name} is not a JSON value")
