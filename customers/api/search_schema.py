"""The OpenAPI description of `POST /v1/customers/search`: its body, from the same constants
the parser (customers.api.params.parse_customer_search_body) and the condition language
(customers.conditions) use."""

from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers

from customers.api.params import DEFAULT_LIMIT, EXPANDABLE, MAX_CURSOR_LENGTH, MAX_LIMIT
from customers.api.schema import (
    BODY_TOO_LARGE,
    LIST_RESPONSES,
    MAX_LIST_VALUES,
    MAX_METADATA_FILTERS,
    MAX_VALUE_LENGTH,
    ORDER_VALUES,
    SORT_VALUES,
    STATUS_VALUES,
    UNSUPPORTED_MEDIA_TYPE,
    WWW_AUTHENTICATE_HEADER,
    bad_request,
    single_value_schema,
)
from customers.conditions import (
    ARRAY_OPERATORS,
    DATE_FIELDS,
    DATE_OPERATORS,
    MAX_CONDITIONS,
    STRING_FIELDS,
    STRING_OPERATORS,
)
from customers.filters import DEFAULT_ORDER, MAX_SEARCH_WORDS, MIN_SEARCH_WORD_LENGTH
from customers.shape import MAX_METADATA_KEY_LENGTH

STRING_FIELD_SCHEMA = {
    "oneOf": [
        {"type": "string", "enum": list(STRING_FIELDS)},
        {
            "type": "string",
            "pattern": rf"^metadata\.[^\u0000]{{1,{MAX_METADATA_KEY_LENGTH}}}$",
            "description": "`metadata.KEY`: the metadata value under `KEY`.",
        },
    ]
}
DATE_VALUE_SCHEMA = {
    "type": "string",
    "description": (
        "An RFC 3339 date-time with `Z` or an offset, or a date (`2024-01-15`): `eq` with a "
        "date matches that whole UTC day; the other operators take its 00:00:00Z."
    ),
}


def condition_shape(
    *, title: str, fields: dict, operators: tuple[str, ...], data_type: str, value: dict
) -> dict:
    return {
        "type": "object",
        "title": title,
        "required": ["field", "operator", "data_type", "value"],
        "additionalProperties": False,
        "properties": {
            "field": fields,
            "operator": {"type": "string", "enum": list(operators)},
            "data_type": {"type": "string", "enum": [data_type]},
            "value": {
                "type": "object",
                "required": [data_type],
                "additionalProperties": False,
                "properties": {data_type: value},
            },
        },
    }


CONDITION_SCHEMA = {
    "oneOf": [
        condition_shape(
            title="string condition",
            fields=STRING_FIELD_SCHEMA,
            operators=STRING_OPERATORS,
            data_type="string",
            value=single_value_schema(),
        ),
        condition_shape(
            title="array condition",
            fields=STRING_FIELD_SCHEMA,
            operators=ARRAY_OPERATORS,
            data_type="array",
            value={
                "type": "array",
                "items": single_value_schema(),
                "minItems": 1,
                "maxItems": MAX_LIST_VALUES,
            },
        ),
        condition_shape(
            title="date condition",
            fields={"type": "string", "enum": list(DATE_FIELDS)},
            operators=DATE_OPERATORS,
            data_type="date",
            value=DATE_VALUE_SCHEMA,
        ),
    ],
    "description": (
        "`eq` is exact (`email` case-insensitively); `contains` and `not_contains` are "
        "case-insensitive substrings (`not_contains` keeps customers where the field is empty "
        "or missing); `in` and `not_in` take exact values; `before` is `lt`, `after` is `gt`. "
        "Anything else is a 400 naming the condition's part (`filters[1].operator`)."
    ),
}


@extend_schema_field(CONDITION_SCHEMA)
class ConditionSchemaField(serializers.JSONField):
    pass


@extend_schema_serializer(component_name="SortCondition")
class SortConditionSchemaSerializer(serializers.Serializer):
    field = serializers.ChoiceField(choices=SORT_VALUES)
    direction = serializers.ChoiceField(
        choices=["asc", "desc"],
        required=False,
        allow_null=True,
        default=DEFAULT_ORDER,
        help_text="`null` or left out: `desc`.",
    )


def text_schema_field(help_text: str, **kwargs) -> serializers.CharField:
    return serializers.CharField(
        required=False, max_length=MAX_VALUE_LENGTH, help_text=help_text, **kwargs
    )


def id_list_field(what: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=MAX_VALUE_LENGTH, allow_blank=True),
        required=False,
        max_length=MAX_LIST_VALUES,
        help_text=f"Only customers whose {what} is one of these (empty items are left out).",
    )


@extend_schema_serializer(
    component_name="CustomerSearch",
    examples=[
        OpenApiExample(
            "the default list", value={"limit": DEFAULT_LIMIT, "offset": 0}, request_only=True
        ),
        OpenApiExample(
            "conditions and a sort of two keys",
            value={
                "filters": [
                    {
                        "field": "name",
                        "operator": "contains",
                        "data_type": "string",
                        "value": {"string": "acme"},
                    },
                    {
                        "field": "created_at",
                        "operator": "after",
                        "data_type": "date",
                        "value": {"date": "2024-01-01"},
                    },
                ],
                "sort": [
                    {"field": "status", "direction": "asc"},
                    {"field": "created_at", "direction": "desc"},
                ],
                "limit": 20,
            },
            request_only=True,
        ),
    ],
)
class CustomerSearchSchemaSerializer(serializers.Serializer):
    """Every key is optional; an unknown key is a 400 naming it, and `null` is absent. The
    answer is exactly that of `GET /v1/customers` with the same parameters."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # `null` is the key left out
            field.allow_null = True
            if isinstance(field, serializers.CharField | serializers.ChoiceField):
                field.allow_blank = True  # and so is "", as on the list

    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT
    )
    offset = serializers.IntegerField(required=False, min_value=0, default=0)
    cursor = serializers.CharField(
        required=False,
        max_length=MAX_CURSOR_LENGTH,
        help_text="The `next_cursor` of a previous page of this same search; not with offset.",
    )
    expand = serializers.ChoiceField(
        choices=list(EXPANDABLE), required=False, help_text="`parent_customer`."
    )
    status = serializers.ChoiceField(choices=STATUS_VALUES, required=False)
    customer_ids = id_list_field("`id`")
    external_ids = id_list_field("`external_id`")
    parent_customer_ids = id_list_field("`parent_customer_id`")
    external_id = text_schema_field("Only the customers with exactly this external id.")
    email = text_schema_field("Only the customers with this email (case-insensitive).")
    q = text_schema_field(
        f"Free text: words of at least {MIN_SEARCH_WORD_LENGTH} characters (at most "
        f"{MAX_SEARCH_WORDS}), each a case-insensitive substring of name, email or external id."
    )
    metadata = serializers.DictField(
        child=serializers.CharField(max_length=MAX_VALUE_LENGTH, allow_blank=True),
        required=False,
        help_text=(
            f"Each pair as `metadata[KEY]=VALUE`, ANDed; at most {MAX_METADATA_FILTERS}, keys of"
            f" 1 to {MAX_METADATA_KEY_LENGTH} characters; an empty value is left out."
        ),
    )
    start_time = serializers.CharField(
        required=False, help_text="`created_at` at or after this RFC 3339 instant (or date)."
    )
    end_time = serializers.CharField(
        required=False, help_text="`created_at` at or before this RFC 3339 instant (or date)."
    )
    order = serializers.ChoiceField(
        choices=ORDER_VALUES,
        required=False,
        help_text="The direction of `created_at` when `sort` is not given (not with `sort`).",
    )
    sort = SortConditionSchemaSerializer(
        many=True,
        required=False,
        help_text=(
            "The first item is the primary order, the next break its ties, then `id` in the "
            "first item's direction; each field at most once."
        ),
    )
    filters = serializers.ListField(
        child=ConditionSchemaField(),
        required=False,
        max_length=MAX_CONDITIONS,
        help_text=f"At most {MAX_CONDITIONS} conditions, ANDed with each other and the rest.",
    )


SEARCH_REQUEST = CustomerSearchSchemaSerializer
SEARCH_PARAMETERS = [WWW_AUTHENTICATE_HEADER]
SEARCH_RESPONSES = {
    **LIST_RESPONSES,
    400: bad_request(
        "filters[0].operator", "must be one of eq, contains, not_contains for data_type string"
    ),
    413: BODY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
}
