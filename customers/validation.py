"""Field rules for customers: one module that the importer, the API and the admin all use.

``clean_customer_fields`` checks a mapping of field name to raw value and returns the
normalised values (country upper-cased, metadata copied); it raises ``CustomerValidationError``
with every offending field named, so the caller can answer with one clear message.
"""

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.validators import EmailValidator
from django_countries import countries

from customers.models import CustomerStatus
from customers.shape import (
    EDITABLE_FIELDS,
    FIELD,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_LENGTH,
    PLAIN_TEXT_FIELDS,
    REQUIRED_FIELDS,
    max_length_of,
)
from customers.text import text_problem

CUSTOMER_ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{max_length_of('id')}}}")

# ISO 3166-1 alpha-2: the officially assigned codes, from django-countries' table.
ISO_3166_ALPHA2 = frozenset(countries.countries)  # no translation needed for the codes
CUSTOMER_ID_MESSAGE = (
    f"must be a customer id (1 to {max_length_of('id')} letters, digits, '_' or '-')"
)

# Field name -> (required, maximum length) for the plain text fields.
TEXT_FIELD_LIMITS: dict[str, tuple[bool, int]] = {
    name: (FIELD[name].required, max_length_of(name)) for name in PLAIN_TEXT_FIELDS
}

email_validator = EmailValidator()
# Django compiles its patterns lazily behind a proxy; the proxy costs more than the match.
EMAIL_USER_PATTERN = re.compile(
    email_validator.user_regex.pattern, email_validator.user_regex.flags
)


@functools.lru_cache(maxsize=16384)
def email_domain_is_valid(domain: str) -> bool:
    # Django's check of the part after "@" (IDNA, literal addresses); domains repeat across
    # customers, so an import of a million rows checks each one once.
    return email_validator.validate_domain_part(domain)


def email_is_valid(value: str) -> bool:
    """Django's EmailValidator, with the domain check cached (see email_domain_is_valid)."""
    if not value or "@" not in value or len(value) > 320:
        return False
    user_part, domain_part = value.rsplit("@", 1)
    if not EMAIL_USER_PATTERN.match(user_part):
        return False
    return domain_part in email_validator.domain_allowlist or email_domain_is_valid(domain_part)


class CustomerValidationError(Exception):
    """Raised with ``errors``: field name -> list of messages (each reads after the name)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors

    @property
    def first_field(self) -> str:
        return next(iter(self.errors))

    @property
    def first_message(self) -> str:
        field = self.first_field
        return f"{field} {self.errors[field][0]}"


def check_plain_text(value: Any, *, required: bool, max_length: int) -> str | None:
    """The message for a bad text value, or None when it is fine."""
    if not isinstance(value, str):
        return "must be a string"
    problem = text_problem(value, max_length=max_length)
    if problem:
        return problem
    if required and value == "":
        return "is required and must not be empty"
    return None


def check_external_id(value: Any) -> str | None:
    required, max_length = TEXT_FIELD_LIMITS["external_id"]
    problem = check_plain_text(value, required=required, max_length=max_length)
    if problem:
        return problem
    if value != value.strip():
        return "must not begin or end with whitespace"
    return None


def check_email(value: Any) -> str | None:
    if value is None:
        return None
    if value == "":
        return "must be a valid email address, or null for none (not an empty string)"
    problem = check_plain_text(value, required=False, max_length=max_length_of("email"))
    if problem:
        return problem
    if not email_is_valid(value):
        return "must be a valid email address"
    return None


def check_country(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if value and value.upper() not in ISO_3166_ALPHA2:
        return "must be an ISO 3166-1 alpha-2 country code (e.g. US) or empty"
    return None


def check_customer_reference(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a string"
    problem = text_problem(value)
    if problem:
        return problem
    if not CUSTOMER_ID_PATTERN.fullmatch(value):
        return CUSTOMER_ID_MESSAGE
    return None


def check_metadata(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object of string keys to string values"
    if len(value) > MAX_METADATA_KEYS:
        return f"must have at most {MAX_METADATA_KEYS} keys"
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            return "keys must be non-empty strings"
        problem = text_problem(key)
        if problem:
            return f"keys {problem}"
        if len(key) > MAX_METADATA_KEY_LENGTH:
            return f"keys must be at most {MAX_METADATA_KEY_LENGTH} characters ({key[:40]!r}…)"
        if not isinstance(item, str):
            return f"values must be strings (key {key!r})"
        problem = text_problem(item, max_length=MAX_METADATA_VALUE_LENGTH)
        if problem:
            return f"values {problem} (key {key!r})"
    return None


STATUS_VALUES = frozenset(CustomerStatus.values)
STATUS_MESSAGE = "must be one of " + ", ".join(CustomerStatus.values)


def check_status(value: Any) -> str | None:
    return STATUS_MESSAGE if value not in STATUS_VALUES else None


def check_timestamp(value: Any) -> str | None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        return "must be an RFC 3339 timestamp with a time zone offset"
    return None


def check_customer_id(value: Any) -> str | None:
    if value is None:
        return CUSTOMER_ID_MESSAGE
    return check_customer_reference(value)


FIELD_CHECKS = {
    "id": check_customer_id,
    "external_id": check_external_id,
    "email": check_email,
    "address_country": check_country,
    "parent_customer_id": check_customer_reference,
    "metadata": check_metadata,
    "status": check_status,
    "created_at": check_timestamp,
    "updated_at": check_timestamp,
}
ALL_FIELDS = frozenset({*EDITABLE_FIELDS, "id", "created_at", "updated_at"})


def field_problem(field: str, value: Any) -> str | None:
    check = FIELD_CHECKS.get(field)
    if check is not None:
        return check(value)
    required, max_length = TEXT_FIELD_LIMITS[field]
    return check_plain_text(value, required=required, max_length=max_length)


def clean_customer_fields(
    data: Mapping[str, Any], *, partial: bool = False, fields: Iterable[str] | None = None
) -> dict[str, Any]:
    """Validate ``data`` (field -> value) and return the normalised values.

    Only the keys present are checked; unless ``partial``, the required fields must be
    present. ``fields`` restricts which keys are accepted at all (callers reject unknown
    keys before this, with their own wording).
    """
    allowed = (
        set(fields)
        if fields is not None
        else set(EDITABLE_FIELDS)
        | {
            "id",
            "created_at",
            "updated_at",
        }
    )
    errors: dict[str, list[str]] = {}
    if not partial:
        for field in REQUIRED_FIELDS:
            if field not in data:
                errors[field] = ["is required"]
    cleaned: dict[str, Any] = {}
    for field, value in data.items():
        if field not in allowed:
            errors[field] = ["is not a known field"]
            continue
        problem = field_problem(field, value)
        if problem:
            errors[field] = [problem]
            continue
        if field == "address_country":
            value = value.upper()
        elif field == "metadata":
            value = dict(value)
        cleaned[field] = value
    if errors:
        raise CustomerValidationError(errors)
    return cleaned
