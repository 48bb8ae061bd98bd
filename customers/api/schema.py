"""The OpenAPI description of `/v1/` (drf-spectacular): schema-only pieces, never run on a request.

The views build their JSON by hand (``customer_as_dict``, ``error_body``, ``CustomerListPresenter``)
and read their parameters with ``parse_customer_list_params`` and ``CustomerFilterSet``; the
serializers, parameters and responses here only describe that, from the same constants, so
that ``views.py`` gains decorators and nothing else. Served at `/v1/openapi.json` (JSON) and
shown by Swagger UI at `/v1/docs/`; ``test_openapi`` checks both against the real shapes.
"""

from django.conf import settings
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers

from customers.api.errors import ERROR_CODES
from customers.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from customers.api.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER
from customers.api.middleware import MAX_QUERY_STRING_BYTES
from customers.api.params import (
    DEFAULT_LIMIT,
    EXPANDABLE,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    MAX_OFFSET,
)
from customers.api.ratelimit import (
    LIMIT_HEADER,
    REMAINING_HEADER,
    RESET_HEADER,
    RETRY_AFTER_HEADER,
    rate_of,
    too_many_requests_message,
    window_of,
)
from customers.filters import (
    BOUND_PARAMS,
    DEFAULT_ORDER,
    DEFAULT_SORT,
    MAX_LIST_VALUES,
    MAX_METADATA_FILTERS,
    MAX_SEARCH_WORDS,
    MAX_VALUE_LENGTH,
    MIN_SEARCH_WORD_LENGTH,
    ORDER_CHOICES,
    SORT_COLUMNS,
)
from customers.models import ActorType, CustomerEventType, CustomerStatus
from customers.shape import (
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_LENGTH,
    max_length_of,
)
from customers.validation import CUSTOMER_ID_PATTERN, TEXT_FIELD_LIMITS

# ---------------------------------------------------------------------------------------------
# Security schemes: one key, two ways of sending it.

BEARER_SCHEME = "bearerAuth"
API_KEY_SCHEME = "apiKeyAuth"
API_KEY_HEADER = "x-api-key"


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """`ApiKeyAuthentication` reads the key from either header: two alternative schemes."""

    target_class = "customers.api.authentication.ApiKeyAuthentication"
    name = [BEARER_SCHEME, API_KEY_SCHEME]

    def get_security_requirement(self, auto_schema):
        # A list is OR (either header will do); a dict with both names would mean AND.
        return [{BEARER_SCHEME: []}, {API_KEY_SCHEME: []}]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "sk_...",
                "description": (
                    "`Authorization: Bearer <key>`. A key (`sk_` and at least 32 more "
                    "characters) belongs to one tenant and one environment, the scope of "
                    "every read and write made with it. Missing, malformed, unknown or revoked "
                    "keys are a 401."
                ),
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
                "description": (
                    f"`{API_KEY_HEADER}: <key>`: the same key, in its own header. When both "
                    "headers are sent, `Authorization` is the one read."
                ),
            },
        ]


# ---------------------------------------------------------------------------------------------
# Reusable bits of JSON Schema.

# A NUL byte anywhere in a value is a 400 (PostgreSQL cannot store it). ECMA-262 syntax.
NO_NUL_SCHEMA_PATTERN = r"^[^\u0000]*$"
# An external id neither begins nor ends with white space (it is never trimmed).
EXTERNAL_ID_SCHEMA_PATTERN = r"^[^\s\u0000]([^\u0000]*[^\s\u0000])?$"
CUSTOMER_ID_SCHEMA_PATTERN = rf"^{CUSTOMER_ID_PATTERN.pattern}$"

# What `error_body` can produce here: the contract's codes, and the two DRF statuses whose
# code comes from their HTTP phrase (an Accept header without JSON, a body that is not JSON).
ERROR_CODE_STATUSES = {code: status for status, code in ERROR_CODES.items()}
ERROR_CODE_STATUSES.update(not_acceptable=406, unsupported_media_type=415)
ERROR_CODE_CHOICES = [
    (code, "HTTP 413 or 414" if code == "request_too_large" else f"HTTP {status}")
    for code, status in sorted(ERROR_CODE_STATUSES.items(), key=lambda item: item[1])
]


def single_value_schema(**extra) -> dict:
    """A query or path value: at most 255 characters, no NUL byte."""
    return {
        "type": "string",
        "maxLength": MAX_VALUE_LENGTH,
        "pattern": NO_NUL_SCHEMA_PATTERN,
        **extra,
    }


def value_list_schema() -> dict:
    return {"type": "array", "items": single_value_schema(), "maxItems": MAX_LIST_VALUES}


# ---------------------------------------------------------------------------------------------
# The customer object, as `customer_as_dict` builds it.

CUSTOMER_EXAMPLE = {
    "id": "cust_01J2Z3K4M5N6P7Q8R9S0T1V2W3",
    "external_id": "acme-1",
    "name": "Acme Inc",
    "email": "billing@acme.example",
    "address_line1": "1 Main Street",
    "address_line2": "",
    "address_city": "Springfield",
    "address_state": "IL",
    "address_postal_code": "62701",
    "address_country": "US",
    "parent_customer_id": None,
    "metadata": {"plan": "pro"},
    "environment_id": "env_production",
    "tenant_id": "tenant_acme",
    "status": "published",
    "created_at": "2024-01-15T10:30:00Z",
    "updated_at": "2024-01-15T10:30:00Z",
}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "type": "string",
            "maxLength": MAX_METADATA_VALUE_LENGTH,
            "pattern": NO_NUL_SCHEMA_PATTERN,
        },
        "maxProperties": MAX_METADATA_KEYS,
        "description": (
            f"String keys (1 to {MAX_METADATA_KEY_LENGTH} characters) to string values (at most "
            f"{MAX_METADATA_VALUE_LENGTH} characters), at most {MAX_METADATA_KEYS} keys; `{{}}` "
            "when empty. A write replaces it whole."
        ),
    }
)
class MetadataField(serializers.DictField):
    child = serializers.CharField()


def string_field(
    *,
    max_length: int,
    min_length: int = 0,
    pattern: str | None = None,
    string_format: str | None = None,
    **kwargs,
) -> serializers.Field:
    """A string property described exactly as given.

    Not a CharField: drf-spectacular turns a CharField that allows `""` and has a pattern or
    format into `oneOf: [<it>, {maxLength: 0}]`, which says nothing more and reads worse.
    """
    schema: dict = {"type": "string"}
    if string_format:
        schema["format"] = string_format
    if min_length:
        schema["minLength"] = min_length
    schema["maxLength"] = max_length
    if pattern:
        schema["pattern"] = pattern
    field_class = extend_schema_field(schema)(type("StringSchemaField", (serializers.Field,), {}))
    return field_class(**kwargs)


def text_field(name: str, **kwargs) -> serializers.CharField:
    """One of the plain text fields, with its length limit from the validation module."""
    _, max_length = TEXT_FIELD_LIMITS[name]
    return serializers.CharField(max_length=max_length, **kwargs)


@extend_schema_serializer(
    component_name="Customer",
    examples=[OpenApiExample("customer", value=CUSTOMER_EXAMPLE, response_only=True)],
)
class CustomerSchemaSerializer(serializers.Serializer):
    """A customer: always these 17 keys, in this order, `null` where unset."""

    id = string_field(
        max_length=max_length_of("id"),
        pattern=CUSTOMER_ID_SCHEMA_PATTERN,
        help_text=(
            "`cust_` and a 26-character ULID when the server made it; an imported customer may "
            "keep its own (1 to 50 of `A-Z a-z 0-9 _ -`)."
        ),
    )
    external_id = text_field(
        "external_id",
        help_text="Your id for the customer; unique in the scope among customers not archived.",
    )
    name = text_field("name")
    email = serializers.EmailField(
        max_length=max_length_of("email"),
        allow_null=True,
        help_text="Stored as given, matched case-insensitively; not unique.",
    )
    address_line1 = text_field("address_line1", allow_blank=True)
    address_line2 = text_field("address_line2", allow_blank=True)
    address_city = text_field("address_city", allow_blank=True)
    address_state = text_field("address_state", allow_blank=True)
    address_postal_code = text_field("address_postal_code", allow_blank=True)
    address_country = string_field(
        max_length=max_length_of("address_country"),
        pattern=r"^([A-Z]{2})?$",
        help_text='An ISO 3166-1 alpha-2 code, uppercase, or `""`.',
    )
    parent_customer_id = serializers.CharField(
        allow_null=True, help_text="The parent customer, in the same scope."
    )
    metadata = MetadataField()
    environment_id = serializers.CharField(help_text="From the API key; never from a body.")
    tenant_id = serializers.CharField(help_text="From the API key; never from a body.")
    status = serializers.ChoiceField(choices=CustomerStatus.choices)
    created_at = serializers.DateTimeField(help_text="RFC 3339, UTC, with `Z`.")
    updated_at = serializers.DateTimeField(help_text="RFC 3339, UTC, with `Z`.")


class ParentCustomerField(serializers.Field):
    """The parent's `Customer` object, or `null`."""


class ParentCustomerFieldScheme(OpenApiSerializerFieldExtension):
    """`Customer` or `null`, in the form OpenAPI 3.0 validators agree on.

    drf-spectacular writes a nullable reference as `allOf: [$ref], nullable: true`, but in
    OpenAPI 3.0.3 `nullable` has no effect without a `type` beside it, and `null` fails the
    `allOf`: strict validators reject the `null` this API sends for a customer without parent.
    """

    target_class = ParentCustomerField

    def map_serializer_field(self, auto_schema, direction):
        customer = auto_schema.resolve_serializer(CustomerSchemaSerializer, direction).ref
        return {"oneOf": [customer, {"type": "object", "nullable": True, "enum": [None]}]}


@extend_schema_serializer(component_name="CustomerListItem")
class CustomerListItemSchemaSerializer(CustomerSchemaSerializer):
    """A customer in a list: with `expand=parent_customer`, also `parent_customer`, last."""

    parent_customer = ParentCustomerField(
        required=False,
        help_text=(
            "Only with `expand=parent_customer`: the parent's full object (without its own "
            "`parent_customer`), or `null` when there is no parent."
        ),
    )


@extend_schema_serializer(component_name="Pagination")
class PaginationSchemaSerializer(serializers.Serializer):
    """The `limit` and `offset` applied, the exact number of matching customers, and where
    the next page starts."""

    total = serializers.IntegerField(min_value=0)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT)
    offset = serializers.IntegerField(
        min_value=0,
        max_value=MAX_OFFSET,
        allow_null=True,
        help_text="`null` for a page asked for by `cursor`.",
    )
    has_more = serializers.BooleanField(help_text="Rows follow this page.")
    next_cursor = serializers.CharField(
        allow_null=True,
        help_text="Send it as `cursor` for the page that follows; `null` when `has_more` is false.",
    )


@extend_schema_serializer(
    component_name="CustomerList",
    many=False,
    examples=[
        OpenApiExample(
            "page",
            value={
                "items": [CUSTOMER_EXAMPLE],
                "pagination": {
                    "total": 1,
                    "limit": DEFAULT_LIMIT,
                    "offset": 0,
                    "has_more": False,
                    "next_cursor": None,
                },
            },
            response_only=True,
        )
    ],
)
class CustomerListSchemaSerializer(serializers.Serializer):
    """One page of customers."""

    items = CustomerListItemSchemaSerializer(many=True)
    pagination = PaginationSchemaSerializer()


# ---------------------------------------------------------------------------------------------
# Request bodies. Only JSON is accepted (the parser is JSONParser alone).

WRITE_BODY_NOTE = (
    " Server-owned keys (`id`, `tenant_id`, `environment_id`, `created_at`, `updated_at`, "
    "`parent_customer`) are accepted and ignored, so an object read can be sent back; any "
    "other key not listed here is a 400 naming it. A NUL byte or a lone surrogate in any "
    "string (keys included) is a 400 naming the field, and a body nested deeper than 32 "
    "levels a 400 naming `body`."
)


def customer_write_fields(*, create: bool) -> dict[str, serializers.Field]:
    """The 12 writable fields (``customers.validation.EDITABLE_FIELDS``), in contract order."""

    def text(name: str, pattern: str = NO_NUL_SCHEMA_PATTERN, **kwargs) -> serializers.Field:
        required, max_length = TEXT_FIELD_LIMITS[name]
        return string_field(
            max_length=max_length,
            min_length=1 if required else 0,
            pattern=pattern,
            required=create and required,
            **kwargs,
        )

    status_extra = (
        {"default": CustomerStatus.PUBLISHED.value}
        if create
        else {
            "help_text": (
                "`archived` is the soft delete; `published` or `draft` restores an archived "
                "customer (409 if its `external_id` has been taken since)."
            )
        }
    )
    return {
        "external_id": text(
            "external_id",
            pattern=EXTERNAL_ID_SCHEMA_PATTERN,
            help_text=(
                "Must not begin or end with white space (400; never trimmed). 409 when a "
                "customer not archived in the scope has it."
            ),
        ),
        "name": text("name"),
        "email": string_field(
            max_length=max_length_of("email"),
            min_length=1,
            pattern=NO_NUL_SCHEMA_PATTERN,
            string_format="email",
            allow_null=True,
            required=False,
            help_text="A valid email address, or `null`.",
        ),
        "address_line1": text("address_line1"),
        "address_line2": text("address_line2"),
        "address_city": text("address_city"),
        "address_state": text("address_state"),
        "address_postal_code": text("address_postal_code"),
        "address_country": string_field(
            max_length=max_length_of("address_country"),
            pattern=r"^([A-Za-z]{2})?$",
            required=False,
            help_text=(
                'An ISO 3166-1 alpha-2 code (any case, stored uppercase) or `""`; a code '
                "that is not assigned is a 400."
            ),
        ),
        "parent_customer_id": string_field(
            min_length=1,
            max_length=max_length_of("parent_customer_id"),
            pattern=CUSTOMER_ID_SCHEMA_PATTERN,
            allow_null=True,
            required=False,
            help_text=(
                "A customer of the same scope that is not archived, not this customer and "
                "not one of its descendants (else a 400 naming `parent_customer_id`); `null` "
                "for none."
            ),
        ),
        "metadata": MetadataField(required=False),
        "status": serializers.ChoiceField(
            choices=CustomerStatus.choices, required=False, **status_extra
        ),
    }


CustomerCreateSchemaSerializer = extend_schema_serializer(
    component_name="CustomerCreate",
    examples=[
        OpenApiExample(
            "new customer",
            value={
                "external_id": "acme-1",
                "name": "Acme Inc",
                "email": "billing@acme.example",
                "address_country": "US",
                "metadata": {"plan": "pro"},
            },
            request_only=True,
        )
    ],
)(
    type(
        "CustomerCreateSchemaSerializer",
        (serializers.Serializer,),
        {
            "__doc__": "A new customer: `external_id` and `name` are required." + WRITE_BODY_NOTE,
            **customer_write_fields(create=True),
        },
    )
)
CustomerUpdateSchemaSerializer = extend_schema_serializer(
    component_name="CustomerUpdate",
    examples=[
        OpenApiExample("rename", value={"name": "Acme Incorporated"}, request_only=True),
        OpenApiExample("clear the email", value={"email": None}, request_only=True),
        OpenApiExample("archive", value={"status": "archived"}, request_only=True),
    ],
)(
    type(
        "CustomerUpdateSchemaSerializer",
        (serializers.Serializer,),
        {
            "__doc__": (
                "The fields to change (PUT and PATCH alike): only the keys sent change, "
                "`metadata` is replaced whole." + WRITE_BODY_NOTE
            ),
            **customer_write_fields(create=False),
        },
    )
)


# ---------------------------------------------------------------------------------------------
# The error envelope, as `errors.error_body` builds it.


@extend_schema_field({"type": "boolean", "description": "Always `false` on an error."})
class FalseField(serializers.BooleanField):
    pass


@extend_schema_serializer(component_name="Error")
class ErrorSchemaSerializer(serializers.Serializer):
    """What went wrong; more keys may be added later."""

    code = serializers.ChoiceField(
        choices=ERROR_CODE_CHOICES,
        help_text="Stands for the HTTP status; switch on it rather than on `message`.",
    )
    message = serializers.CharField(help_text="Names the offending parameter or field.")
    details = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Parameter or field name -> its messages; `{}` when there is nothing to add.",
    )
    request_id = serializers.CharField(
        required=False,
        help_text="The request's `X-Request-ID` (the one sent, if sane, else a new one).",
    )


@extend_schema_serializer(component_name="ErrorEnvelope")
class ErrorEnvelopeSchemaSerializer(serializers.Serializer):
    """Every error from `/v1/` has this shape."""

    success = FalseField()
    error = ErrorSchemaSerializer()


def error_example(
    status: int, message: str, details: dict | None = None, *, name: str | None = None
) -> OpenApiExample:
    return OpenApiExample(
        name or ERROR_CODES[status],
        value={
            "success": False,
            "error": {"code": ERROR_CODES[status], "message": message, "details": details or {}},
        },
        status_codes=[status],
        response_only=True,
    )


def error_response(status: int, description: str, *examples: OpenApiExample) -> OpenApiResponse:
    return OpenApiResponse(
        ErrorEnvelopeSchemaSerializer, description=description, examples=list(examples)
    )


def bad_request(name: str, message: str) -> OpenApiResponse:
    return error_response(
        400,
        "A parameter, header or body field is invalid; `details` names each one.",
        error_example(400, f"{name} {message}", {name: [message]}),
    )


def not_found(message: str) -> OpenApiResponse:
    return error_response(404, "No such customer in the key's scope.", error_example(404, message))


UNAUTHENTICATED = error_response(
    401,
    "The API key is missing, malformed, unknown or revoked.",
    error_example(401, "the API key is not valid"),
)
PERMISSION_DENIED = error_response(
    403,
    "A signed-in staff user with no environment to work in, or a failed CSRF check.",
    error_example(
        403,
        "no environment to work in: staff need a membership of a tenant with an environment",
    ),
)
NOT_FOUND = not_found("no customer 'cust_01J2Z3K4M5N6P7Q8R9S0T1V2W3' in this environment")
IDEMPOTENCY_KEY_REUSED = error_example(
    409,
    f"{IDEMPOTENCY_HEADER} was already used with a different request (method, path or body)",
    {IDEMPOTENCY_HEADER: ["was already used with a different request"]},
    name="idempotency_key_reused",
)
CONFLICT = error_response(
    409,
    "Another customer that is not archived has this `external_id`, or the `Idempotency-Key` "
    "was already used with a different request.",
    error_example(
        409,
        "a customer with external_id 'acme-1' already exists in this environment",
        {"external_id": ["already exists"]},
    ),
    IDEMPOTENCY_KEY_REUSED,
)
IDEMPOTENCY_CONFLICT = error_response(
    409, "The `Idempotency-Key` was already used with a different request.", IDEMPOTENCY_KEY_REUSED
)
UNSUPPORTED_MEDIA_TYPE = OpenApiResponse(
    ErrorEnvelopeSchemaSerializer,
    description="The body is not `application/json`.",
    examples=[
        OpenApiExample(
            "unsupported_media_type",
            value={
                "success": False,
                "error": {
                    "code": "unsupported_media_type",
                    "message": 'Unsupported media type "text/plain" in request.',
                    "details": {},
                },
            },
            status_codes=[415],
            response_only=True,
        )
    ],
)
INTERNAL_ERROR = error_response(
    500, "An unexpected error; the body holds no stack trace.", error_example(500, "internal error")
)
SERVICE_UNAVAILABLE = error_response(
    503,
    "The database is unreachable; try again shortly.",
    error_example(503, "the service is unavailable, try again shortly"),
)

QUERY_TOO_LONG = error_response(
    414,
    f"The query string is longer than {MAX_QUERY_STRING_BYTES} bytes.",
    error_example(
        414,
        f"query must be at most {MAX_QUERY_STRING_BYTES} bytes",
        {"query": [f"must be at most {MAX_QUERY_STRING_BYTES} bytes"]},
    ),
)
BODY_TOO_LARGE = error_response(
    413,
    f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (refused unread).",
    error_example(
        413,
        f"body must be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes",
        {"body": [f"must be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"]},
    ),
)

# Every operation can answer these.
COMMON_ERRORS = {
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    414: QUERY_TOO_LONG,
    500: INTERNAL_ERROR,
    503: SERVICE_UNAVAILABLE,
}


# ---------------------------------------------------------------------------------------------
# Parameters.

STATUS_VALUES = list(CustomerStatus.values)
SORT_VALUES = list(SORT_COLUMNS)
ORDER_VALUES = [value for value, _ in ORDER_CHOICES]

LIST_NOTE = (
    f"Comma-separated (`a,b`); repeating the parameter (`{{name}}=a&{{name}}=b`) is accepted "
    f"too. Empty items are ignored; at most {MAX_LIST_VALUES} values, each at most "
    f"{MAX_VALUE_LENGTH} characters."
)


def query_parameter(name: str, schema: dict, description: str, **kwargs) -> OpenApiParameter:
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description, **kwargs)


def value_list_parameter(name: str, what: str) -> OpenApiParameter:
    return query_parameter(
        name,
        value_list_schema(),
        f"Only customers whose {what} is one of these. " + LIST_NOTE.format(name=name),
        style="form",
        explode=False,
    )


BOUND_WORDS = {"gte": "at or after", "gt": "after", "lte": "at or before", "lt": "before"}

CUSTOMER_LIST_PARAMETERS = [
    query_parameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"How many customers to return, 1 to {MAX_LIMIT}.",
    ),
    query_parameter(
        "offset",
        {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        "How many matching customers to skip. Past the last one, `items` is empty and "
        "`total` still exact.",
    ),
    query_parameter(
        "cursor",
        {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
        "The `next_cursor` of a previous page: the customers that follow its last one, at the "
        "same cost however deep. Bound to the scope, filters, `sort` and `order` it was made "
        "for (anything else is a 400 naming `cursor`); `limit` may change. Not with `offset`.",
    ),
    query_parameter(
        "sort",
        {"type": "string", "enum": SORT_VALUES, "default": DEFAULT_SORT},
        "The sort key; ties are broken by `id` in the same direction, so pages never overlap. "
        "`name` and `email` sort case-insensitively; a missing email sorts last ascending, "
        "first descending.",
    ),
    query_parameter(
        "order",
        {"type": "string", "enum": ORDER_VALUES, "default": DEFAULT_ORDER},
        "The sort direction.",
    ),
    query_parameter(
        "status",
        {"type": "string", "enum": STATUS_VALUES},
        "Only customers with this status; absent means every status.",
    ),
    value_list_parameter("customer_ids", "`id`"),
    value_list_parameter("external_ids", "`external_id`"),
    value_list_parameter("parent_customer_ids", "`parent_customer_id`"),
    query_parameter(
        "external_id", single_value_schema(), "Only the customers with exactly this external id."
    ),
    query_parameter(
        "email",
        single_value_schema(),
        "Only the customers with this email, compared case-insensitively.",
    ),
    query_parameter(
        "q",
        single_value_schema(),
        f"Free text: whitespace-separated words (each at least {MIN_SEARCH_WORD_LENGTH} "
        f"characters, at most {MAX_SEARCH_WORDS}), each matched case-insensitively as a "
        "substring of `name`, `email` or `external_id`; every word must match. A write is "
        "found at once.",
    ),
    *[
        query_parameter(
            name,
            single_value_schema(),
            f"`{field}` {BOUND_WORDS[lookup]} this instant: an RFC 3339 date-time with `Z` or an "
            "offset (`2024-01-15T12:30:00.250+02:00`; send `+` as `%2B`), or a date "
            "(`2024-01-15`, meaning 00:00:00Z). A date-time without an offset is a 400.",
        )
        for name, (field, lookup) in BOUND_PARAMS.items()
    ],
    query_parameter(
        "metadata",
        {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": MAX_VALUE_LENGTH},
            "maxProperties": MAX_METADATA_FILTERS,
        },
        "`metadata[KEY]=VALUE`: customers whose metadata holds `KEY` with exactly this value "
        f"(case-sensitive); several keys are ANDed, at most {MAX_METADATA_FILTERS}. `metadata` "
        "alone or `metadata[]` is an unknown parameter.",
        style="deepObject",
        explode=True,
    ),
    query_parameter(
        "view",
        {"type": "string", "maxLength": 100},
        "The slug of a view the tenant's staff saved and shared (in the admin's customer "
        "list): its parameters apply, and each parameter given here replaces the view's (a "
        "list parameter its whole list). An unknown, private or deleted slug, or a view whose "
        "saved parameters no longer validate, is a 400 naming `view`. Cursors are bound to it.",
    ),
    query_parameter(
        "expand",
        {"type": "array", "items": {"type": "string", "enum": list(EXPANDABLE)}},
        "Comma-separated; `parent_customer` adds each item's parent object as "
        "`parent_customer`. Any other value is a 400 naming it.",
        style="form",
        explode=False,
    ),
]

CUSTOMER_ID_PARAMETER = OpenApiParameter(
    "customer_id",
    {"type": "string", "pattern": CUSTOMER_ID_SCHEMA_PATTERN},
    OpenApiParameter.PATH,
    description=(
        "The customer's `id`. Archived customers are found too; an id that cannot exist "
        "(another format) is a 404 like any unknown one."
    ),
)
EXTERNAL_ID_PARAMETER = OpenApiParameter(
    "external_id",
    single_value_schema(minLength=1),
    OpenApiParameter.PATH,
    description=(
        "The customer's `external_id`. It may contain `/` (sent as is or as `%2F`); more than "
        f"{MAX_VALUE_LENGTH} characters or a NUL byte is a 400."
    ),
)

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    OpenApiParameter.HEADER,
    description=(
        "Makes the write safe to retry. Keys are per scope and kept 24 hours: the same key with "
        "the same method, path and JSON body replays the first response (status and body) and "
        "writes nothing; the same key with anything else is a 409. Concurrent requests with one "
        "key write once."
    ),
)


def replayed_header(*statuses: int) -> OpenApiParameter:
    """The response header a replayed idempotent answer carries."""
    return OpenApiParameter(
        REPLAYED_HEADER,
        {"type": "string", "enum": ["true"]},
        OpenApiParameter.HEADER,
        description=f"`true` when this is the replay of an earlier request with that "
        f"`{IDEMPOTENCY_HEADER}`.",
        response=list(statuses),
    )


WWW_AUTHENTICATE_HEADER = OpenApiParameter(
    "WWW-Authenticate",
    str,
    OpenApiParameter.HEADER,
    description='`Bearer realm="api"` on a 401 from a missing or bad key.',
    response=[401],
)


# ---------------------------------------------------------------------------------------------
# Per operation: what CustomerViewSet's @extend_schema decorators use.

LIST_PARAMETERS = [*CUSTOMER_LIST_PARAMETERS, WWW_AUTHENTICATE_HEADER]
LIST_RESPONSES = {
    200: OpenApiResponse(
        CustomerListSchemaSerializer, description="A page of customers and the exact total."
    ),
    400: bad_request("limit", "must be between 1 and 1000"),
    **COMMON_ERRORS,
}

# The export takes the list's filters, not its paging (limit, offset, cursor) or expand.
NOT_EXPORT_PARAMETERS = frozenset({"limit", "offset", "cursor", "expand"})
EXPORT_PARAMETERS = [
    query_parameter(
        "format",
        {"type": "string", "enum": ["csv", "jsonl"], "default": "csv"},
        "`csv` (also chosen by `Accept: text/csv`): UTF-8, a header of the 17 fields, "
        "`metadata` as its JSON text, `null` as an empty cell, nothing neutralised for "
        "spreadsheets, lossless through `import_customers`. `jsonl` (also `Accept: "
        "application/x-ndjson`): one customer per line, as the list writes it. Any other "
        "format is a 400.",
    ),
    *[
        parameter
        for parameter in CUSTOMER_LIST_PARAMETERS
        if parameter.name not in NOT_EXPORT_PARAMETERS
    ],
    WWW_AUTHENTICATE_HEADER,
]
EXPORT_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(
        OpenApiTypes.STR,
        description=(
            "Every matching customer in the list's order, streamed from one snapshot, as an "
            "attachment (`customers-<environment_id>-<UTC time>.csv`)."
        ),
    ),
    (200, "application/x-ndjson"): OpenApiResponse(
        OpenApiTypes.STR, description="The same customers, one JSON object per line."
    ),
    # Errors answer in the JSON envelope, whatever format was asked for.
    (400, "application/json"): bad_request(
        "limit", "is not accepted by the export, which streams every match"
    ),
    **{(status, "application/json"): response for status, response in COMMON_ERRORS.items()},
}

CREATE_PARAMETERS = [
    IDEMPOTENCY_KEY_PARAMETER,
    replayed_header(201, 400, 409),
    WWW_AUTHENTICATE_HEADER,
]
CREATE_RESPONSES = {
    201: OpenApiResponse(
        CustomerSchemaSerializer,
        description="Created (or, for a repeated `Idempotency-Key`, the first response).",
    ),
    400: bad_request("name", "is required"),
    409: CONFLICT,
    413: BODY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    **COMMON_ERRORS,
}

RETRIEVE_PARAMETERS = [CUSTOMER_ID_PARAMETER, WWW_AUTHENTICATE_HEADER]
RETRIEVE_RESPONSES = {
    200: OpenApiResponse(CustomerSchemaSerializer, description="The customer."),
    404: NOT_FOUND,
    **COMMON_ERRORS,
}

UPDATE_PARAMETERS = [
    CUSTOMER_ID_PARAMETER,
    IDEMPOTENCY_KEY_PARAMETER,
    replayed_header(200, 400, 404, 409),
    WWW_AUTHENTICATE_HEADER,
]
UPDATE_RESPONSES = {
    200: OpenApiResponse(CustomerSchemaSerializer, description="The customer as it is now."),
    400: bad_request(
        "address_country", "must be an ISO 3166-1 alpha-2 country code (e.g. US) or empty"
    ),
    404: NOT_FOUND,
    409: CONFLICT,
    413: BODY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    **COMMON_ERRORS,
}

UPDATE_BY_QUERY_PARAMETERS = [
    query_parameter("id", single_value_schema(), "The customer's `id` (or give the next one)."),
    query_parameter(
        "external_customer_id",
        single_value_schema(),
        "The external id of the customer (not archived) to update; exactly one of the two.",
    ),
    IDEMPOTENCY_KEY_PARAMETER,
    replayed_header(200, 400, 404, 409),
    WWW_AUTHENTICATE_HEADER,
]
UPDATE_BY_QUERY_RESPONSES = {
    **UPDATE_RESPONSES,
    400: bad_request("id", "exactly one of id and external_customer_id must name the customer"),
}

DESTROY_PARAMETERS = [
    CUSTOMER_ID_PARAMETER,
    IDEMPOTENCY_KEY_PARAMETER,
    replayed_header(204, 400, 404, 409),
    WWW_AUTHENTICATE_HEADER,
]
DESTROY_RESPONSES = {
    204: OpenApiResponse(description="Archived (archiving an archived customer changes nothing)."),
    400: bad_request(IDEMPOTENCY_HEADER, f"must be 1 to {MAX_KEY_LENGTH} characters"),
    404: NOT_FOUND,
    409: IDEMPOTENCY_CONFLICT,
    **COMMON_ERRORS,
}

ERASE_PARAMETERS = [
    CUSTOMER_ID_PARAMETER,
    IDEMPOTENCY_KEY_PARAMETER,
    replayed_header(200, 400, 404, 409),
    WWW_AUTHENTICATE_HEADER,
]
ERASE_RESPONSES = {
    200: OpenApiResponse(
        CustomerSchemaSerializer,
        description=(
            "Erased: name `[erased]`, email `null`, address lines, city, state and postal "
            "code empty, metadata values empty (keys kept), status `archived`; `id` and "
            "`external_id` kept. Its stored events hold the same erased values, and a "
            "`customer.erased` event with no personal value is recorded. Erasing again "
            "changes nothing."
        ),
    ),
    400: bad_request(IDEMPOTENCY_HEADER, f"must be 1 to {MAX_KEY_LENGTH} characters"),
    404: NOT_FOUND,
    409: IDEMPOTENCY_CONFLICT,
    **COMMON_ERRORS,
}

BY_EXTERNAL_ID_PARAMETERS = [EXTERNAL_ID_PARAMETER, WWW_AUTHENTICATE_HEADER]
BY_EXTERNAL_ID_RESPONSES = {
    200: OpenApiResponse(CustomerSchemaSerializer, description="The customer."),
    400: bad_request("external_id", f"must be at most {MAX_VALUE_LENGTH} characters"),
    404: not_found("no customer with external_id 'acme-1' in this environment"),
    **COMMON_ERRORS,
}


# ---------------------------------------------------------------------------------------------
# Events.


@extend_schema_serializer(component_name="EventActor")
class EventActorSchemaSerializer(serializers.Serializer):
    """Who made the change: an API key (its printed prefix), a user (the username) or a
    command (its name)."""

    type = serializers.ChoiceField(choices=ActorType.choices)
    id = serializers.CharField()


@extend_schema_serializer(component_name="EventData")
class EventDataSchemaSerializer(serializers.Serializer):
    object = CustomerSchemaSerializer(help_text="The customer as the API returns it, after.")
    previous_attributes = serializers.DictField(
        help_text="The old value of every field that changed; `{}` for `customer.created`."
    )


@extend_schema_serializer(component_name="Event")
class EventSchemaSerializer(serializers.Serializer):
    """One change to a customer, recorded in the change's own transaction."""

    id = serializers.CharField(help_text="`evt_` and a ULID.")
    type = serializers.ChoiceField(choices=CustomerEventType.choices)
    created_at = serializers.CharField(help_text="RFC 3339 in UTC, with `Z`.")
    tenant_id = serializers.CharField()
    environment_id = serializers.CharField()
    actor = EventActorSchemaSerializer()
    request_id = serializers.CharField(
        allow_null=True, help_text="The request's `X-Request-ID`; `null` outside a request."
    )
    data = EventDataSchemaSerializer()


class EventPaginationSchemaSerializer(serializers.Serializer):
    """No `offset` and no `total`: the log is large; pages follow by cursor."""

    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT)
    has_more = serializers.BooleanField()
    next_cursor = serializers.CharField(allow_null=True)


@extend_schema_serializer(component_name="EventList", many=False)
class EventListSchemaSerializer(serializers.Serializer):
    items = EventSchemaSerializer(many=True)
    pagination = EventPaginationSchemaSerializer()


EVENT_LIST_PARAMETERS = [
    query_parameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"How many events to return, 1 to {MAX_LIMIT}.",
    ),
    query_parameter(
        "cursor",
        {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
        "The `next_cursor` of a previous page, with the same filters and `order`.",
    ),
    query_parameter(
        "order",
        {"type": "string", "enum": ORDER_VALUES, "default": DEFAULT_ORDER},
        "`desc`: newest first; `asc`: oldest first.",
    ),
    query_parameter(
        "type",
        {"type": "array", "items": {"type": "string", "enum": list(CustomerEventType.values)}},
        "Only events of these types, comma-separated or repeated.",
        style="form",
        explode=False,
    ),
    query_parameter("customer_id", single_value_schema(), "Only one customer's events."),
    *[
        query_parameter(
            name,
            single_value_schema(),
            f"`created_at` {BOUND_WORDS[lookup]} this instant, as for customers.",
        )
        for name, (field, lookup) in BOUND_PARAMS.items()
        if field == "created_at"
    ],
    WWW_AUTHENTICATE_HEADER,
]
EVENT_LIST_RESPONSES = {
    200: OpenApiResponse(EventListSchemaSerializer, description="A page of events."),
    400: bad_request(
        "type",
        "has an unknown type 'customer.deleted': the types are "
        + ", ".join(CustomerEventType.values),
    ),
    **COMMON_ERRORS,
}
EVENT_RETRIEVE_PARAMETERS = [
    OpenApiParameter(
        "event_id",
        {"type": "string"},
        OpenApiParameter.PATH,
        description="The event's `id` (`evt_...`).",
    ),
    WWW_AUTHENTICATE_HEADER,
]
EVENT_RETRIEVE_RESPONSES = {
    200: OpenApiResponse(EventSchemaSerializer, description="The event."),
    404: error_response(
        404,
        "No such event in the key's scope.",
        error_example(404, "no event 'evt_x' in this environment"),
    ),
    **COMMON_ERRORS,
}


# ---------------------------------------------------------------------------------------------
# Rate limits (customers/api/ratelimit.py): added to every operation a key can call, by a
# drf-spectacular postprocessing hook, so that every view, present and future, is described.

KEY_SCHEMES = {BEARER_SCHEME, API_KEY_SCHEME}


def rate_limit_headers() -> dict:
    when = (
        "On every answer to a request with a well-formed key (none while the counters are "
        "unreachable, when the limit is not enforced)."
    )
    return {
        LIMIT_HEADER: {
            "schema": {"type": "integer", "minimum": 1},
            "description": f"The requests the key may make per window (`API_RATE_LIMIT`). {when}",
        },
        REMAINING_HEADER: {
            "schema": {"type": "integer", "minimum": 0},
            "description": f"The requests left to the key in this window. {when}",
        },
        RESET_HEADER: {
            "schema": {"type": "integer", "minimum": 1},
            "description": f"Whole seconds until the window ends and the count restarts. {when}",
        },
    }


def rate_limited_response_schema() -> dict:
    rate = rate_of(settings.API_RATE_LIMIT)
    reset = window_of(rate, 0.0)[1]  # a whole window, the longest wait
    return {
        "headers": {
            RETRY_AFTER_HEADER: {
                "schema": {"type": "integer", "minimum": 1},
                "description": "Whole seconds until the key may call again.",
            },
            **rate_limit_headers(),
        },
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorEnvelope"},
                "examples": {
                    "RateLimited": {
                        "value": {
                            "success": False,
                            "error": {
                                "code": ERROR_CODES[429],
                                "message": too_many_requests_message(rate, reset),
                                "details": {},
                            },
                        },
                        "summary": ERROR_CODES[429],
                    }
                },
            }
        },
        "description": (
            f"The key made more than its {rate} (`API_RATE_LIMIT`, counted across every "
            "process); `Retry-After` says when to try again. The answer is JSON whatever the "
            "operation's format."
        ),
    }


def rate_limit_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: the 429 and the RateLimit headers."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue  # a path's own `parameters`
            schemes = {name for option in operation.get("security", ()) for name in option}
            if not schemes & KEY_SCHEMES:
                continue
            responses = operation["responses"]
            for response in responses.values():
                response["headers"] = {**response.get("headers", {}), **rate_limit_headers()}
            responses["429"] = rate_limited_response_schema()
            operation["responses"] = dict(sorted(responses.items()))
    return result
