"""The condition language of `POST /v1/customers/search` (Flexprice's `filters`).

A condition is ``{"field", "operator", "data_type", "value"}``, ``value`` holding one key
named after ``data_type``. ``parse_conditions`` checks a list of them and names each
problem by its path (``filters[1].operator``, through the FilterSet's ``conditions``);
``condition_filter`` turns one into a filter over the customer queryset, chosen so that the
scope's indexes serve what they can: equality on the columns the list's filters use,
``contains`` on name, email and external id through the scope's trigram index, and
``metadata.KEY`` equality through the scope's metadata index.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, Expression, F, Func, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Contains, Exact, In, IsNull

from customers.models import CustomerStatus
from customers.shape import MAX_METADATA_KEY_LENGTH
from customers.text import abbreviated, text_problem
from customers.values import (
    DATE_PATTERN,
    MAX_LIST_VALUES,
    check_single_value,
    parse_bound,
)

MAX_CONDITIONS = 20
CONDITION_KEYS = ("field", "operator", "data_type", "value")
METADATA_FIELD_PREFIX = "metadata."

# API field -> the model attribute it compares.
STRING_FIELDS = {
    "id": "id",
    "external_id": "external_id",
    "name": "name",
    "email": "email",
    "status": "status",
    "address_line1": "address_line1",
    "address_line2": "address_line2",
    "address_city": "address_city",
    "address_state": "address_state",
    "address_postal_code": "address_postal_code",
    "address_country": "address_country",
    "parent_customer_id": "parent_id",
}
DATE_FIELDS = ("created_at", "updated_at")
STRING_OPERATORS = ("eq", "contains", "not_contains")
ARRAY_OPERATORS = ("in", "not_in")
DATE_OPERATORS = ("eq", "before", "after", "gt", "lt", "gte")
DATA_TYPES = ("string", "array", "date")
# `before` is `lt`, `after` is `gt`.
DATE_LOOKUPS = {"before": "lt", "after": "gt", "gt": "gt", "lt": "lt", "gte": "gte"}
# Fields whose value may be missing (NULL): `not_contains` and `not_in` keep those rows.
NULLABLE_FIELDS = frozenset({"email", "parent_customer_id"})
# The lowercased copies the scope's indexes hold (customers.models.derived_keys_for).
LOWERCASED_COPIES = {"name": "name_key", "email": "email_key"}
SEARCHED_FIELDS = frozenset({"name", "email", "external_id"})


@dataclass(frozen=True)
class Condition:
    field: str  # an API field name, or metadata.KEY
    operator: str
    data_type: str
    value: Any  # a string, a tuple of strings, or (for dates) a datetime or a date's day

    @property
    def metadata_key(self) -> str | None:
        if self.field.startswith(METADATA_FIELD_PREFIX):
            return self.field[len(METADATA_FIELD_PREFIX) :]
        return None


def path_error(path: str, message: str) -> ValidationError:
    """A ValidationError that names where it is (StrictFilterSet.error_details reads it)."""
    # Django formats a message with its params: a user's "%" must stay text.
    return ValidationError(message.replace("%", "%%"), code="invalid", params={"path": path})


def described(value: Any) -> str:
    return abbreviated(repr(value))


def parse_conditions(raw: Any, *, name: str) -> tuple[Condition, ...]:
    """Every condition of ``raw`` (a JSON list), checked; a ValidationError per problem,
    each naming its path under ``name`` (``name[1].operator``)."""
    if raw in (None, ""):
        return ()
    if not isinstance(raw, list | tuple):
        raise path_error(name, "must be a list of conditions")
    if len(raw) > MAX_CONDITIONS:
        raise path_error(name, f"must have at most {MAX_CONDITIONS} conditions")
    conditions, problems = [], []
    for index, item in enumerate(raw):
        try:
            conditions.append(parse_condition(item, path=f"{name}[{index}]"))
        except ValidationError as error:
            problems.append(error)
    if problems:
        raise ValidationError(problems)
    return tuple(conditions)


def parse_condition(item: Any, *, path: str) -> Condition:
    if not isinstance(item, Mapping):
        raise path_error(path, "must be an object with field, operator, data_type and value")
    for key in item:
        if key not in CONDITION_KEYS:
            raise path_error(
                f"{path}.{abbreviated(str(key))}",
                "is not a known key (a condition has field, operator, data_type and value)",
            )
    for key in CONDITION_KEYS:
        if item.get(key) is None:
            raise path_error(f"{path}.{key}", "is required")
    field, operator, data_type = item["field"], item["operator"], item["data_type"]
    for key, given in (("field", field), ("operator", operator), ("data_type", data_type)):
        if not isinstance(given, str):
            raise path_error(f"{path}.{key}", "must be a string")
    check_field(field, path=f"{path}.field")
    if data_type not in DATA_TYPES:
        raise path_error(f"{path}.data_type", f"must be one of {', '.join(DATA_TYPES)}")
    is_date_field = field in DATE_FIELDS
    if is_date_field != (data_type == "date"):
        expected = "date" if is_date_field else "string or array"
        raise path_error(f"{path}.data_type", f"must be {expected} for the field {field}")
    allowed = {"string": STRING_OPERATORS, "array": ARRAY_OPERATORS, "date": DATE_OPERATORS}[
        data_type
    ]
    if operator not in allowed:
        raise path_error(
            f"{path}.operator", f"must be one of {', '.join(allowed)} for data_type {data_type}"
        )
    value = parse_value(item["value"], data_type=data_type, field=field, path=f"{path}.value")
    if data_type == "string" and operator != "eq" and value == "":
        raise path_error(f"{path}.value", f"must not be empty for {operator}")
    return Condition(field=field, operator=operator, data_type=data_type, value=value)


def check_field(field: str, *, path: str) -> None:
    if field in STRING_FIELDS or field in DATE_FIELDS:
        return
    if field.startswith(METADATA_FIELD_PREFIX):
        key = field[len(METADATA_FIELD_PREFIX) :]
        if not key:
            raise path_error(path, "needs a key: metadata.KEY")
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise path_error(
                path, f"metadata keys must be at most {MAX_METADATA_KEY_LENGTH} characters"
            )
        problem = text_problem(key)
        if problem:
            raise path_error(path, problem)
        return
    known = ", ".join([*STRING_FIELDS, *DATE_FIELDS, "metadata.KEY"])
    raise path_error(path, f"must be one of {known}; {described(field)} is not")


def parse_value(raw: Any, *, data_type: str, field: str, path: str) -> Any:
    shape = {"string": '{"string": "..."}', "array": '{"array": ["...", ...]}'}.get(
        data_type, '{"date": "2024-01-15T10:30:00Z"}'
    )
    if not isinstance(raw, Mapping) or list(raw) != [data_type]:
        raise path_error(path, f"must be an object with the one key {data_type}: {shape}")
    given = raw[data_type]
    if data_type == "array":
        if not isinstance(given, list) or not all(isinstance(item, str) for item in given):
            raise path_error(f"{path}.array", "must be a list of strings")
        if not given:
            raise path_error(f"{path}.array", "must hold at least one value")
        if len(given) > MAX_LIST_VALUES:
            raise path_error(f"{path}.array", f"must have at most {MAX_LIST_VALUES} values")
        for item in given:
            check_text(item, path=f"{path}.array")
        values = tuple(dict.fromkeys(given))
        for item in values:
            check_status(item, field=field, path=f"{path}.array")
        return values
    if not isinstance(given, str):
        raise path_error(f"{path}.{data_type}", "must be a string")
    check_text(given, path=f"{path}.{data_type}")
    if data_type == "date":
        try:
            return parse_date_value(given)
        except ValidationError as error:
            raise path_error(f"{path}.date", error.messages[0]) from None
    check_status(given, field=field, path=f"{path}.string", allow_empty=True)
    return given


def check_text(value: str, *, path: str) -> None:
    try:
        check_single_value(value)
    except ValidationError as error:
        raise path_error(path, error.messages[0]) from None


def check_status(value: str, *, field: str, path: str, allow_empty: bool = False) -> None:
    if field == "status" and value not in CustomerStatus.values and not (allow_empty and not value):
        raise path_error(path, f"must be one of {', '.join(CustomerStatus.values)}")


@dataclass(frozen=True)
class Day:
    """A date-only value: `eq` matches the whole UTC day; other operators its start."""

    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


def parse_date_value(value: str) -> datetime | Day:
    moment = parse_bound(value)
    return Day(start=moment) if DATE_PATTERN.fullmatch(value) else moment


# -- Conditions as filters ---------------------------------------------------------------------


class UnicodeLower(Func):
    """Unicode lowercase, as Python's ``str.lower`` (what the stored copies and `q` use).

    PostgreSQL's ``lower()`` follows the column's collation, and the code-point (``C``)
    columns lowercase ASCII only; an ICU collation lowercases all of Unicode. SQLite's
    ``lower()`` is ASCII-only: the app registers Python's (customers.apps).
    """

    function = "LOWER"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler, connection, template='LOWER((%(expressions)s)::text COLLATE "und-x-icu")'
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function=SQLITE_UNICODE_LOWER)


SQLITE_UNICODE_LOWER = "crm_unicode_lower"


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """connection_created: Python's lowercase inside SQLite (see UnicodeLower)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            SQLITE_UNICODE_LOWER,
            1,
            lambda value: value.lower() if isinstance(value, str) else value,
            deterministic=True,
        )


def condition_filter(condition: Condition) -> Q | Expression:
    """The filter one condition adds to the customer queryset (``queryset.filter(it)``)."""
    key = condition.metadata_key
    if key is not None:
        return metadata_condition(condition, key)
    if condition.field in DATE_FIELDS:
        return date_condition(condition)
    if condition.data_type == "array":
        return array_condition(condition)
    if condition.operator == "eq":
        return equal_condition(condition.field, condition.value)
    found = contains_condition(condition.field, condition.value.lower())
    if condition.operator == "contains":
        return found
    kept = ~Q(found)
    if condition.field in NULLABLE_FIELDS:
        kept |= Q(**{f"{STRING_FIELDS[condition.field]}__isnull": True})
    return kept


def equal_condition(field: str, value: str) -> Q:
    column = STRING_FIELDS[field]
    if value == "" and field in NULLABLE_FIELDS:
        return Q(**{f"{column}__isnull": True}) | Q(**{column: ""})
    if field == "email":
        return Q(email_key=value.lower())
    if field == "name":  # the scope's name index holds the lowercased copy
        return Q(name_key=value.lower(), name=value)
    return Q(**{column: value})


def array_condition(condition: Condition) -> Q:
    field, values = condition.field, condition.value
    column = STRING_FIELDS[field]
    if field == "email":
        matched = Q(email_key__in=sorted({value.lower() for value in values}))
    elif field == "name":
        matched = Q(name_key__in=sorted({value.lower() for value in values}), name__in=values)
    else:
        matched = Q(**{f"{column}__in": values})
    if condition.operator == "in":
        return matched
    # Django's negation of a lookup on a nullable column keeps the NULLs.
    return ~matched


def contains_condition(field: str, lowered: str) -> Q:
    """A case-insensitive substring; name, email and external id first narrow by the scope's
    trigram index over their joined lowercased copy (`search_key`), then check the field."""
    if field in LOWERCASED_COPIES:
        own = Contains(F(LOWERCASED_COPIES[field]), lowered)
    else:
        own = Contains(UnicodeLower(F(STRING_FIELDS[field])), lowered)
    if field in SEARCHED_FIELDS:
        return Q(Contains(F("search_key"), lowered)) & Q(own)
    return Q(own)


def date_condition(condition: Condition) -> Q:
    field, value = condition.field, condition.value
    if condition.operator == "eq":
        if isinstance(value, Day):
            return Q(**{f"{field}__gte": value.start, f"{field}__lt": value.end})
        return Q(**{field: value})
    moment = value.start if isinstance(value, Day) else value
    return Q(**{f"{field}__{DATE_LOOKUPS[condition.operator]}": moment})


def metadata_condition(condition: Condition, key: str) -> Q | Expression:
    """On PostgreSQL equality is a containment (`metadata @> '{"KEY": "VALUE"}'`), which the
    scope's metadata GIN index serves; elsewhere the key's text is compared."""
    value = KeyTextTransform(key, "metadata")
    operator = condition.operator
    if operator in ("eq", "in", "not_in"):
        values = (condition.value,) if operator == "eq" else condition.value
        if operator == "eq" and condition.value == "":
            return Q(Exact(value, "")) | Q(IsNull(KeyTextTransform(key, "metadata"), True))
        if connection.vendor == "postgresql":
            matched = (
                Q(metadata__contains={key: values[0]})
                if len(values) == 1
                else Q(MetadataValueIn(key, values))
            )
        else:
            matched = Q(In(value, list(values)))
        if operator == "not_in":
            # A customer without the key holds none of the values.
            return ~matched | Q(IsNull(KeyTextTransform(key, "metadata"), True))
        return matched
    found = Contains(UnicodeLower(value), condition.value.lower())
    if operator == "contains":
        return Q(found)
    return ~Q(found) | Q(IsNull(KeyTextTransform(key, "metadata"), True))


class MetadataValueIn(Expression):
    """PostgreSQL: ``metadata @@ '$."KEY" == "A" || $."KEY" == "B"'``, one jsonpath that the
    scope's metadata GIN index (jsonb_path_ops) answers in one scan; an OR of containments
    is one scan a value, which the planner prices above the scope's btree."""

    output_field = BooleanField()

    def __init__(self, key: str, values: tuple[str, ...], *, column=None):
        super().__init__()
        self.column = column if column is not None else F("metadata")
        accessor = f"$.{json.dumps(key)}"
        self.path = " || ".join(f"{accessor} == {json.dumps(value)}" for value in values)

    def get_source_expressions(self):
        return [self.column]

    def set_source_expressions(self, expressions):
        (self.column,) = expressions

    def as_sql(self, compiler, connection):
        column, params = compiler.compile(self.column)
        return f"({column} @@ %s::jsonpath)", [*params, self.path]


def apply_conditions(queryset: QuerySet, conditions: tuple[Condition, ...]) -> QuerySet:
    for condition in conditions:
        queryset = queryset.filter(condition_filter(condition))
    return queryset
