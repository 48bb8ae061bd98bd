"""Strict reading of `GET /v1/customers` parameters: what the FilterSet does not own.

The API answers 400 for anything it does not understand: an unknown parameter (a typo
must not silently widen a query), a single-valued parameter given twice, a bad `limit`,
`offset` or `expand`, a `metadata[KEY]` filter with a bad key (each named as sent). The
filters themselves are validated by ``CustomerFilterSet``.
"""

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.http import QueryDict

from customers.api.errors import ApiValidationError
from customers.filters import (
    CustomerFilterSet,
    EventFilterSet,
    check_single_value,
    metadata_filter_problems,
)
from customers.text import abbreviated, text_problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_OFFSET = 2**62
EXPANDABLE = ("parent_customer",)
# `format` is how the browsable API asks for a renderer; it selects no customers.
RENDERING_PARAMS = frozenset({"format"})
LIST_PARAMS = frozenset({"limit", "offset", "cursor", "expand"})
# A cursor carries a sort value (a name: up to 255 characters) and a signature.
MAX_CURSOR_LENGTH = 2000
INTEGER_PATTERN = re.compile(r"-?\d{1,30}")


@dataclass(frozen=True)
class CustomerListParams:
    limit: int
    offset: int | None  # None when the page is asked for by cursor
    cursor: str | None
    expand: frozenset[str]
    filters: QueryDict


def parse_integer(value: str, *, minimum: int, maximum: int) -> int:
    """An integer in [minimum, maximum]; a maximum of MAX_OFFSET or more reads as "no limit"
    to people ("must be 0 or more"), and is named only to a value past it."""
    unbounded = maximum >= MAX_OFFSET
    allowed = f"{minimum} or more" if unbounded else f"between {minimum} and {maximum}"
    if not INTEGER_PATTERN.fullmatch(value):
        raise ValidationError(f"must be an integer, {allowed}")
    number = int(value)
    if number < minimum or (number > maximum and not unbounded):
        raise ValidationError(f"must be {allowed}")
    if number > maximum:
        raise ValidationError(f"must be at most {maximum}")
    return number


def parse_expand(value: str) -> frozenset[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPANDABLE]
    if unknown:
        raise ValidationError(
            f"has an unknown value {unknown[0]!r}: only {', '.join(EXPANDABLE)} can be expanded"
        )
    return frozenset(names)


@dataclass(frozen=True)
class CustomerExportParams:
    format: str
    filters: QueryDict


EXPORT_FORMATS = ("csv", "jsonl")


def parse_customer_export_params(query: QueryDict, *, accepted_format: str) -> CustomerExportParams:
    """The export's parameters: the list's filters, `format`, and none of the paging ones."""
    errors: dict[str, list[str]] = {}
    for name in LIST_PARAMS:
        if name in query:
            errors[name] = ["is not accepted by the export, which streams every match"]
    requested = query.getlist("format")
    if len(requested) > 1:
        errors["format"] = ["must be given only once"]
    elif requested and requested[0] not in EXPORT_FORMATS:
        errors["format"] = [f"must be one of {', '.join(EXPORT_FORMATS)}"]
    rest = query.copy()
    for name in LIST_PARAMS:
        rest.pop(name, None)
    filters = QueryDict()
    try:
        filters = parse_customer_list_params(rest).filters
    except ApiValidationError as error:
        errors.update(error.details)
    if errors:
        raise ApiValidationError(errors)
    chosen = requested[0] if requested else accepted_format
    return CustomerExportParams(
        format=chosen if chosen in EXPORT_FORMATS else EXPORT_FORMATS[0], filters=filters
    )


def parse_customer_list_params(
    query: QueryDict, *, structured: frozenset[str] = frozenset()
) -> CustomerListParams:
    """Check every parameter; raise one ApiValidationError naming each offending one.

    ``structured`` names the FilterSet parameters that only the search body can give (its
    conditions): the FilterSet checks them like the rest."""
    errors: dict[str, list[str]] = {}
    filter_names = CustomerFilterSet.API_PARAMS | structured
    multi_value = CustomerFilterSet.MULTI_VALUE_PARAMS
    metadata_filters = []
    for name in query:
        if name in RENDERING_PARAMS:
            continue
        if CustomerFilterSet.is_metadata_param(name) and name != "metadata[]":
            values = [value for value in query.getlist(name) if value != ""]
            if values:  # an empty value counts as absent
                metadata_filters.append((name, name[len("metadata[") : -1], values))
        elif name not in filter_names and name not in LIST_PARAMS:
            errors[name] = ["is not a known parameter"]
        elif name not in multi_value and len(query.getlist(name)) > 1:
            errors[name] = ["must be given only once"]
    errors.update(metadata_filter_problems(metadata_filters))

    def single(name: str) -> str:
        # An empty value counts as absent.
        return "" if name in errors else query.get(name, "")

    limit, offset, expand = DEFAULT_LIMIT, 0, frozenset()
    parsers = {
        "limit": lambda v: parse_integer(v, minimum=1, maximum=MAX_LIMIT),
        "offset": lambda v: parse_integer(v, minimum=0, maximum=MAX_OFFSET),
        "expand": parse_expand,
    }
    parsed = {}
    for name, parser in parsers.items():
        value = single(name)
        if not value:
            continue
        try:
            check_single_value(value)
            parsed[name] = parser(value)
        except ValidationError as error:
            errors[name] = list(error.messages)
    cursor = single("cursor") or None
    if cursor is not None:
        problem = text_problem(cursor, max_length=MAX_CURSOR_LENGTH)
        if problem:
            errors["cursor"] = [problem]
        elif single("offset"):
            errors["offset"] = ["must not be given with cursor (the cursor says where to start)"]
    if errors:
        raise ApiValidationError(errors)
    limit = parsed.get("limit", limit)
    offset = None if cursor is not None else parsed.get("offset", offset)
    expand = parsed.get("expand", expand)
    filters = QueryDict(mutable=True)
    for name in query:
        if name in filter_names or any(name == param for param, _, _ in metadata_filters):
            filters.setlist(name, query.getlist(name))
    return CustomerListParams(
        limit=limit, offset=offset, cursor=cursor, expand=expand, filters=filters
    )


# `POST /v1/customers/search` (Flexprice's body): each key becomes the list's parameter.
SEARCH_INTEGER_KEYS = frozenset({"limit", "offset"})
SEARCH_TEXT_KEYS = frozenset({"cursor", "expand", "status", "external_id", "email", "q", "order"})
SEARCH_LIST_KEYS = frozenset({"customer_ids", "external_ids", "parent_customer_ids"})
# Body key -> the list parameter (and FilterSet parameter) it becomes.
SEARCH_RENAMED_KEYS = {
    "start_time": "created_at[gte]",
    "end_time": "created_at[lte]",
    "filters": "conditions",
}
SEARCH_STRUCTURED_KEYS = frozenset({"sort", "filters"})
SEARCH_KEYS = (
    SEARCH_INTEGER_KEYS
    | SEARCH_TEXT_KEYS
    | SEARCH_LIST_KEYS
    | SEARCH_STRUCTURED_KEYS
    | {"metadata", "start_time", "end_time"}
)
SEARCH_ONLY_PARAMS = frozenset({"conditions"})


def parse_customer_search_body(body: Any) -> CustomerListParams:
    """The search body as the list's parameters, checked by the list's own rules: the same
    answer and the same errors as `GET /v1/customers`, each error named by its body path."""
    if not isinstance(body, dict):
        raise ApiValidationError({"body": ["must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    query = QueryDict(mutable=True)
    for key, value in body.items():
        name = SEARCH_RENAMED_KEYS.get(key, key)
        if key not in SEARCH_KEYS:
            errors[abbreviated(str(key))] = ["is not a known key"]
        elif value is None:
            continue  # JSON null: absent, as the SDKs send an unset field
        elif key in SEARCH_INTEGER_KEYS:
            if isinstance(value, bool) or not isinstance(value, int):
                errors[key] = ["must be an integer"]
            else:
                query[name] = str(value)
        elif key in SEARCH_LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                errors[key] = ["must be a list of strings"]
            else:
                query.setlist(name, value)
        elif key == "metadata":
            errors.update(search_metadata_params(value, query))
        elif key in SEARCH_STRUCTURED_KEYS:
            if not isinstance(value, list) or not value:
                item = "{field, direction}" if key == "sort" else "condition"
                errors[key] = [f"must be a list of at least one {item} object"]
            else:
                query[name] = value  # the FilterSet reads the structure itself
        elif not isinstance(value, str):
            errors[key] = ["must be a string"]
        else:
            query[name] = value
    if errors:
        raise ApiValidationError(errors)
    try:
        return parse_customer_list_params(query, structured=SEARCH_ONLY_PARAMS)
    except ApiValidationError as error:
        raise search_error(error.details) from None


def search_metadata_params(value: Any, query: QueryDict) -> dict[str, list[str]]:
    """`metadata: {"KEY": "VALUE"}` as `metadata[KEY]=VALUE`; the problems by body path."""
    if not isinstance(value, dict):
        return {"metadata": ["must be an object of string keys to string values"]}
    problems = {}
    for key, item in value.items():
        if not key:
            problems["metadata"] = ["keys must not be empty"]
        elif not isinstance(item, str):
            problems[f"metadata.{abbreviated(key)}"] = ["must be a string"]
        else:
            query[f"metadata[{key}]"] = item
    return problems


def search_error_name(name: str) -> str:
    """A list parameter's name as the search body calls it (`created_at[gte]`: start_time,
    `conditions[1].operator`: filters[1].operator, `metadata[plan]`: metadata.plan)."""
    for key, param in SEARCH_RENAMED_KEYS.items():
        if name == param or name.startswith(f"{param}["):
            return key + name[len(param) :]
    if CustomerFilterSet.is_metadata_param(name):
        return f"metadata.{name[len('metadata[') : -1]}"
    return name


def search_error(details: dict[str, list[str]]) -> ApiValidationError:
    return ApiValidationError(
        {search_error_name(name): messages for name, messages in details.items()}
    )


@dataclass(frozen=True)
class EventListParams:
    limit: int
    cursor: str | None
    filters: QueryDict


EVENT_PAGING_PARAMS = frozenset({"limit", "cursor"})


def parse_event_list_params(query: QueryDict) -> EventListParams:
    """`GET /v1/events`: as strict as the customer list; no `offset` (cursors only)."""
    errors: dict[str, list[str]] = {}
    known = EventFilterSet.API_PARAMS | EVENT_PAGING_PARAMS
    for name in query:
        if name in RENDERING_PARAMS:
            continue
        if name == "offset":
            errors[name] = ["is not accepted: the event log pages by cursor (next_cursor)"]
        elif name not in known:
            errors[name] = ["is not a known parameter"]
        elif name not in EventFilterSet.MULTI_VALUE_PARAMS and len(query.getlist(name)) > 1:
            errors[name] = ["must be given only once"]
    limit, cursor = DEFAULT_LIMIT, None
    if "limit" not in errors and query.get("limit", ""):
        try:
            check_single_value(query["limit"])
            limit = parse_integer(query["limit"], minimum=1, maximum=MAX_LIMIT)
        except ValidationError as error:
            errors["limit"] = list(error.messages)
    if "cursor" not in errors and query.get("cursor", ""):
        cursor = query["cursor"]
        problem = text_problem(cursor, max_length=MAX_CURSOR_LENGTH)
        if problem:
            errors["cursor"] = [problem]
    if errors:
        raise ApiValidationError(errors)
    filters = QueryDict(mutable=True)
    for name in query:
        if name in EventFilterSet.API_PARAMS:
            filters.setlist(name, query.getlist(name))
    return EventListParams(limit=limit, cursor=cursor, filters=filters)


CUSTOMER_LOOKUP_PARAMS = ("id", "external_customer_id")


def parse_customer_lookup_params(query: QueryDict) -> tuple[str, str]:
    """`PUT /v1/customers?id=...` or `?external_customer_id=...` (Flexprice's update): exactly
    one of the two, given once; (which, value)."""
    errors: dict[str, list[str]] = {}
    for name in query:
        if name not in CUSTOMER_LOOKUP_PARAMS and name not in RENDERING_PARAMS:
            errors[name] = ["is not a known parameter"]
        elif len(query.getlist(name)) > 1:
            errors[name] = ["must be given only once"]
    given = [name for name in CUSTOMER_LOOKUP_PARAMS if query.get(name)]
    if not errors and len(given) != 1:
        errors["id"] = ["exactly one of id and external_customer_id must name the customer"]
    for name in given:
        try:
            check_single_value(query[name])
        except ValidationError as error:
            errors[name] = list(error.messages)
    if errors:
        raise ApiValidationError(errors)
    return given[0], query[given[0]]
