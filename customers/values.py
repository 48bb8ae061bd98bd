"""How one parameter value is read: a single text value, and a bound's instant.

The list's parameters, the search body's conditions and the admin's filters read their
values here, so each rule has one wording.
"""

import re
from datetime import UTC, date, datetime, time

from django.core.exceptions import ValidationError

from customers.text import text_problem

MAX_LIST_VALUES = 1000
MAX_VALUE_LENGTH = 255


def check_single_value(value: str) -> None:
    problem = text_problem(value, max_length=MAX_VALUE_LENGTH)
    if problem:
        raise ValidationError(problem, code="text")


# RFC 3339 with a `Z` or an offset (fractional seconds up to microseconds), or a date.
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
DATE_TIME_PATTERN = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})"
)
# What `+02:00` becomes in a query string that did not encode the `+` (it decodes to " ").
SPACED_OFFSET_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}[Tt][\d:.]+ \d{2}:\d{2}")
BOUND_MESSAGE = (
    "must be an RFC 3339 date-time with Z or an offset (2024-01-15T10:30:00Z,"
    " 2024-01-15T12:30:00.250+02:00) or a date (2024-01-15)"
)


def parse_bound(value: str) -> datetime:
    """A bound's instant: a date means 00:00:00Z of that day; a date-time needs its offset."""
    try:
        if DATE_PATTERN.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
        if DATE_TIME_PATTERN.fullmatch(value):
            return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValidationError(f"{BOUND_MESSAGE}; {value!r} is not a real date or time") from None
    if SPACED_OFFSET_PATTERN.fullmatch(value):
        raise ValidationError(
            f"{BOUND_MESSAGE}; a '+' in a query string decodes to a space: send it as %2B"
        )
    if DATE_TIME_PATTERN.fullmatch(value + "Z"):
        raise ValidationError(f"{BOUND_MESSAGE}; a date-time without an offset is ambiguous")
    raise ValidationError(BOUND_MESSAGE)
