"""CustomerFilterSet: the one parser of customer list parameters, for the API, admin and exports.

It validates each parameter (values, lengths, NUL bytes, list sizes), filters the queryset
it is given and applies the total ordering (`sort`, then `id` in the same direction). The
scope is never a parameter: callers hand in a queryset already confined to it.
"""

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F, OrderBy, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from customers.conditions import apply_conditions, parse_conditions, path_error
from customers.models import Customer, CustomerEvent, CustomerEventType, CustomerStatus
from customers.shape import MAX_METADATA_KEY_LENGTH
from customers.text import abbreviated, text_problem
from customers.values import (
    MAX_LIST_VALUES,
    MAX_VALUE_LENGTH,
    check_single_value,
    parse_bound,
)

MIN_SEARCH_WORD_LENGTH = 3
MAX_SEARCH_WORDS = 10
MAX_METADATA_FILTERS = 10
# `created_at[gte]`, ...: a bound on a timestamp, by its parameter name.
BOUND_LOOKUPS = ("gte", "gt", "lte", "lt")
BOUND_PARAMS = {
    f"{field}[{lookup}]": (field, lookup)
    for field in ("created_at", "updated_at")
    for lookup in BOUND_LOOKUPS
}
METADATA_PARAM = re.compile(r"metadata\[(.*)\]", re.DOTALL)

# API sort name -> the column that sorts it (names and emails by their lowercased copies).
SORT_COLUMNS = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "name": "name_key",
    "email": "email_key",
    "external_id": "external_id",
    "status": "status",
}
NULLABLE_SORT_COLUMNS = {"email_key"}
DEFAULT_SORT = "created_at"
DEFAULT_ORDER = "desc"
ORDER_CHOICES = [("asc", "asc"), ("desc", "desc")]
HAS_PARENT_CHOICES = [("true", "true"), ("false", "false")]


@dataclass(frozen=True)
class SortKey:
    """One level of a list's order: an allow-listed sort name and its direction."""

    sort: str
    descending: bool

    @property
    def column(self) -> str:
        return SORT_COLUMNS[self.sort]

    @property
    def direction(self) -> str:
        return "desc" if self.descending else "asc"

    def order_by(self) -> OrderBy:
        """A missing email sorts after every email ascending and before them descending
        (what PostgreSQL does by default; SQLite needs to be told)."""
        if self.column in NULLABLE_SORT_COLUMNS:
            if self.descending:
                return F(self.column).desc(nulls_first=True)
            return F(self.column).asc(nulls_last=True)
        return F(self.column).desc() if self.descending else F(self.column).asc()


def sort_keys(sort: str, order: str) -> tuple[SortKey]:
    """The one key of the list's `sort` and `order` parameters."""
    return (SortKey(sort=sort, descending=order == "desc"),)


def customer_ordering(keys: tuple[SortKey, ...]) -> list[OrderBy]:
    """The total ordering of a list: each key, then ``id`` in the first key's direction."""
    tie_break = F("id").desc() if keys[0].descending else F("id").asc()
    return [*(key.order_by() for key in keys), tie_break]


class ValueListWidget(forms.TextInput):
    """Reads every occurrence of the parameter; shows the values comma-separated."""

    def value_from_datadict(self, data, files, name):
        if hasattr(data, "getlist"):
            return data.getlist(name)
        value = data.get(name)
        if value is None:
            return []
        return list(value) if isinstance(value, list | tuple) else [value]

    def format_value(self, value):
        if isinstance(value, list | tuple):
            return ",".join(value)
        return super().format_value(value)


class CheapCopyFieldMixin:
    """Form fields copied cheaply for each form instance.

    Django's Form deep-copies every field per instance (``Field.__deepcopy__``: the widget,
    error messages and validators), so that an instance may change its own; these fields
    are never changed per request, so a shallow copy of the field and its widget is enough
    (sixteen deep copies cost about a millisecond per request). Pinned by test_filters.
    """

    def __deepcopy__(self, memo):
        result = copy.copy(self)
        result.widget = copy.copy(self.widget)
        memo[id(self)] = result
        return result


class CheapCopyFilterMixin:
    """Filters copied shallowly for each FilterSet instance (django-filter deep-copies
    ``base_filters``): a request sets only ``model`` and ``parent`` on its copies."""

    def __deepcopy__(self, memo):
        result = copy.copy(self)
        memo[id(self)] = result
        return result


class ValueListField(CheapCopyFieldMixin, forms.Field):
    """Comma-separated (`a,b`) or repeated (`x=a&x=b`) values; empty items are ignored."""

    widget = ValueListWidget

    def to_python(self, value):
        parts: list[str] = []
        for raw in value or []:
            parts.extend(part.strip() for part in str(raw).split(","))
        # Counted as sent (empty items too: what the OpenAPI document's maxItems counts).
        if len(parts) > MAX_LIST_VALUES:
            raise ValidationError(f"must have at most {MAX_LIST_VALUES} values", code="too_many")
        return list(dict.fromkeys(part for part in parts if part))

    def validate(self, value):
        if len(value) > MAX_LIST_VALUES:
            raise ValidationError(f"must have at most {MAX_LIST_VALUES} values", code="too_many")
        for item in value:
            try:
                check_single_value(item)
            except ValidationError as error:
                raise ValidationError(f"values {error.messages[0]}", code=error.code) from None


class ValueListFilter(CheapCopyFilterMixin, django_filters.Filter):
    field_class = ValueListField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


class SingleValueCharField(CheapCopyFieldMixin, forms.CharField):
    def validate(self, value):
        super().validate(value)
        if value:
            check_single_value(value)


class SingleValueFilter(CheapCopyFilterMixin, django_filters.CharFilter):
    field_class = SingleValueCharField


def choice_messages(choices) -> dict[str, str]:
    allowed = ", ".join(value for value, _ in choices)
    return {"invalid_choice": f"must be one of {allowed}"}


class StrictChoiceField(CheapCopyFieldMixin, django_filters.fields.ChoiceField):
    """A choice whose error names the allowed values (the API's 400 message)."""

    def __init__(self, *, choices, **kwargs):
        kwargs.setdefault("error_messages", choice_messages(choices))
        super().__init__(choices=choices, **kwargs)


class StrictChoiceFilter(CheapCopyFilterMixin, django_filters.ChoiceFilter):
    field_class = StrictChoiceField


class EmailFilter(SingleValueFilter):
    """Case-insensitive equality on the stored lowercase copy, which an index covers."""

    def filter(self, qs, value):
        return qs.filter(email_key=value.lower()) if value else qs


class HasParentFilter(StrictChoiceFilter):
    def filter(self, qs, value):
        return qs.filter(parent__isnull=value != "true") if value else qs


class SearchField(SingleValueCharField):
    """Whitespace-separated words, each at least 3 characters, at most 10 of them."""

    def validate(self, value):
        super().validate(value)
        words = value.split() if value else []
        if len(words) > MAX_SEARCH_WORDS:
            raise ValidationError(f"must have at most {MAX_SEARCH_WORDS} words", code="words")
        short = [word for word in words if len(word) < MIN_SEARCH_WORD_LENGTH]
        if short:
            raise ValidationError(
                f"words must be at least {MIN_SEARCH_WORD_LENGTH} characters long"
                f" ({short[0]!r} is shorter)",
                code="short_word",
            )


class SearchFilter(SingleValueFilter):
    """Case-insensitive (Unicode lowercase) substring search over name, email and external
    id; every word must match. The trigram index on the stored lowercase ``search_key``
    serves it on PostgreSQL, and a write is found at once (no index that lags)."""

    field_class = SearchField

    def filter(self, qs, value):
        for word in (value or "").split():
            qs = qs.filter(search_key__contains=word.lower())
        return qs


class TimestampBoundField(SingleValueCharField):
    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        check_single_value(value)
        return parse_bound(value)

    def validate(self, value):
        forms.Field.validate(self, value)


class TimestampBoundFilter(CheapCopyFilterMixin, django_filters.Filter):
    """``created_at[gte]=...``: compares the column itself, so the scope indexes serve it."""

    field_class = TimestampBoundField

    def filter(self, qs, value):
        if value is None:
            return qs
        return qs.filter(**{f"{self.field_name}__{self.lookup_expr}": value})


def metadata_filter_problems(pairs: list[tuple[str, str, list[str]]]) -> dict[str, list[str]]:
    """The problems of ``metadata[KEY]`` parameters ((name, KEY, values)), by parameter."""
    problems: dict[str, list[str]] = {}
    for name, key, values in pairs:
        if not key:
            problems[name] = ["needs a key: metadata[KEY]=VALUE"]
        elif len(key) > MAX_METADATA_KEY_LENGTH:
            problems[name] = [f"keys must be at most {MAX_METADATA_KEY_LENGTH} characters"]
        elif len(values) > 1:
            problems[name] = ["must be given only once"]
        else:
            problem = text_problem(key) or text_problem(values[0], max_length=MAX_VALUE_LENGTH)
            if problem:
                problems[name] = [problem]
    if len(pairs) > MAX_METADATA_FILTERS and not problems:
        problems[pairs[MAX_METADATA_FILTERS][0]] = [
            f"at most {MAX_METADATA_FILTERS} metadata filters may be given"
        ]
    return problems


class MetadataFiltersWidget(forms.Widget):
    """Reads every `metadata[KEY]` parameter: [(name, KEY, values)], empty values left out."""

    def value_from_datadict(self, data, files, name):
        pairs = []
        for param in data:
            match = METADATA_PARAM.fullmatch(param)
            if match:
                values = data.getlist(param) if hasattr(data, "getlist") else [data[param]]
                values = [value for value in values if value != ""]
                if values:
                    pairs.append((param, match.group(1), values))
        return pairs

    def value_omitted_from_data(self, data, files, name):
        return not any(METADATA_PARAM.fullmatch(param) for param in data)


class MetadataFiltersField(CheapCopyFieldMixin, forms.Field):
    widget = MetadataFiltersWidget

    def to_python(self, value):
        return value or []

    def validate(self, value):
        problems = metadata_filter_problems(value)
        if problems:
            name, messages = next(iter(problems.items()))
            raise ValidationError(f"{name} {messages[0]}", code="metadata")

    def clean(self, value):
        value = super().clean(value)
        return {key: values[0] for _, key, values in value}


class MetadataFilter(CheapCopyFilterMixin, django_filters.Filter):
    """Customers whose metadata holds every KEY with exactly its VALUE (case-sensitive).

    On PostgreSQL one containment (`metadata @> '{...}'`), which the scope's GIN index on
    (environment_id, metadata jsonb_path_ops) serves; elsewhere a comparison per key.
    """

    field_class = MetadataFiltersField

    def filter(self, qs, value):
        if not value:
            return qs
        if connection.vendor == "postgresql":
            return qs.filter(metadata__contains=value)
        for key, item in value.items():
            qs = qs.filter(Exact(KeyTextTransform(key, "metadata"), item))
        return qs


SORT_CHOICES = [(name, name) for name in SORT_COLUMNS]
MAX_SORT_KEYS = len(SORT_COLUMNS)


def parse_sort_items(items: list | tuple) -> tuple[SortKey, ...]:
    """The search body's `sort`: [{"field", "direction"}, ...], each field once."""
    if not items:
        raise path_error("sort", "must hold at least one item")
    keys: list[SortKey] = []
    for index, item in enumerate(items):
        path = f"sort[{index}]"
        if not isinstance(item, Mapping):
            raise path_error(path, "must be an object with field and direction")
        unknown = [key for key in item if key not in ("field", "direction")]
        if unknown:
            raise path_error(
                f"{path}.{abbreviated(str(unknown[0]))}",
                "is not a known key (a sort item has field and direction)",
            )
        field, direction = item.get("field"), item.get("direction")
        if field is None:
            raise path_error(f"{path}.field", "is required")
        if not isinstance(field, str) or field not in SORT_COLUMNS:
            raise path_error(f"{path}.field", f"must be one of {', '.join(SORT_COLUMNS)}")
        if any(key.sort == field for key in keys):
            raise path_error(f"{path}.field", f"sorts on {field} a second time")
        if direction is None:
            direction = DEFAULT_ORDER
        if direction not in ("asc", "desc"):
            raise path_error(f"{path}.direction", "must be one of asc, desc")
        keys.append(SortKey(sort=field, descending=direction == "desc"))
    return tuple(keys)


class SortField(StrictChoiceField):
    """`sort`: a name of the allow-list (the list's parameter, ordered by `order`), or, from
    the search body, a list of {"field", "direction"} items (the first is the primary order,
    the next break its ties): then the cleaned value is their SortKeys."""

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return parse_sort_items(value)
        return super().to_python(value)

    def validate(self, value):
        if not isinstance(value, tuple):
            super().validate(value)


class CustomerFilterForm(forms.Form):
    """The form of CustomerFilterSet (its ``Meta.form``): the filters' fields are added to it;
    ``sort`` and ``order`` are fields of their own, which order rather than filter."""

    sort = SortField(choices=SORT_CHOICES, required=False)
    order = StrictChoiceField(choices=ORDER_CHOICES, required=False)

    def clean(self):
        cleaned = super().clean()
        if isinstance(cleaned.get("sort"), tuple) and cleaned.get("order"):
            self.add_error(
                "order", "must not be given with a list of sort items (each has its direction)"
            )
        return cleaned


def list_sort_keys(cleaned: Mapping[str, Any]) -> tuple[SortKey, ...]:
    """The keys a validated CustomerFilterSet orders by (`sort` and `order`, or the list)."""
    sort = cleaned.get("sort") or DEFAULT_SORT
    if isinstance(sort, tuple):
        return sort
    return sort_keys(sort, cleaned.get("order") or DEFAULT_ORDER)


class RawValueWidget(forms.Widget):
    """Reads a parameter's value as it was handed in (a list of objects from a JSON body)."""

    def value_from_datadict(self, data, files, name):
        return data.get(name)


class ConditionsField(CheapCopyFieldMixin, forms.Field):
    widget = RawValueWidget

    def to_python(self, value):
        return parse_conditions(value, name="conditions")


class ConditionsFilter(CheapCopyFilterMixin, django_filters.Filter):
    """The search body's `filters` (customers.conditions), each ANDed with the rest."""

    field_class = ConditionsField

    def filter(self, qs, value):
        return apply_conditions(qs, value) if value else qs


class StrictFilterSet(django_filters.FilterSet):
    """What the project's FilterSets share: form classes built once, each filter applied
    with its cleaned value, and errors by parameter.

    ``given_only=True`` (the API and the exports, which never show the form) validates only
    the parameters given, in a form class built once per set of given names: a request
    pays for its two filters, not for all two dozen. Filters whose field is left out see
    no value and narrow nothing. The admin keeps every field: it renders the form.
    """

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None, given_only=False):
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.given_only = given_only and data is not None

    def given_filter_names(self) -> frozenset[str]:
        return frozenset(name for name in self.filters if name in self.data)

    def get_form_class(self):
        # django-filter builds a new form class for every instance; the filters never vary,
        # so build each one once per FilterSet class.
        cls = type(self)
        if "_form_classes" not in cls.__dict__:
            cls._form_classes = {}
        key = self.given_filter_names() if self.given_only else None
        form_class = cls._form_classes.get(key)
        if form_class is None:
            form_class = super().get_form_class()
            if key is not None:
                kept = {name: form_class.base_fields[name] for name in key}
                kept.update(
                    (name, field)
                    for name, field in form_class.base_fields.items()
                    if name in self._meta.form.base_fields
                )
                form_class = type(form_class.__name__, (self._meta.form,), kept)
            cls._form_classes[key] = form_class
        return form_class

    def apply_filters(self, queryset: QuerySet) -> QuerySet:
        cleaned = self.form.cleaned_data
        for name, each in self.filters.items():
            if name in cleaned:
                queryset = each.filter(queryset, cleaned[name])
        return queryset

    @property
    def error_details(self) -> dict[str, list[str]]:
        """Messages by parameter; an error inside a structured value names its own path
        (``conditions[1].operator``, customers.conditions.path_error)."""
        details: dict[str, list[str]] = {}
        for field, errors in self.form.errors.as_data().items():
            for error in errors:
                name = (error.params or {}).get("path", field)
                details.setdefault(name, []).extend(error.messages)
        return details


class CustomerFilterSet(StrictFilterSet):
    # Shared by the API and the admin pages.
    status = StrictChoiceFilter(choices=CustomerStatus.choices)
    customer_ids = ValueListFilter(field_name="id")
    external_ids = ValueListFilter(field_name="external_id")
    external_id = SingleValueFilter(field_name="external_id")
    email = EmailFilter(field_name="email")
    parent_customer_ids = ValueListFilter(field_name="parent_id")
    q = SearchFilter(label="Search")
    metadata = MetadataFilter(label="Metadata")
    # The search body's `filters` (POST /v1/customers/search); no query parameter holds it.
    conditions = ConditionsFilter(label="Conditions")
    # The admin pages' own filters (the API accepts only API_PARAMS).
    tenant = SingleValueFilter(field_name="tenant_id")
    environment = SingleValueFilter(field_name="environment_id")
    has_parent = HasParentFilter(choices=HAS_PARENT_CHOICES, label="Has parent")

    class Meta:
        model = Customer
        fields: list[str] = []
        form = CustomerFilterForm

    # Every parameter the FilterSet reads: its filters, then the form's ordering fields.
    ORDERING_PARAMS = ("sort", "order")
    # Parameters that may repeat; every other one must be given at most once.
    MULTI_VALUE_PARAMS = frozenset({"customer_ids", "external_ids", "parent_customer_ids"})
    # The list parameters of `GET /v1/customers` (and `metadata[KEY]`, see is_api_param);
    # the rest serve the admin pages.
    API_PARAMS = frozenset(
        {
            "status",
            "customer_ids",
            "external_ids",
            "external_id",
            "email",
            "parent_customer_ids",
            "q",
            *BOUND_PARAMS,
            "sort",
            "order",
        }
    )

    @classmethod
    def get_filters(cls):
        """The declared filters, and one per timestamp bound, named as its parameter
        (`created_at[gte]`), which no Python attribute can be."""
        filters = super().get_filters()
        for name, (field, lookup) in BOUND_PARAMS.items():
            filters[name] = TimestampBoundFilter(field_name=field, lookup_expr=lookup, label=name)
        return filters

    def given_filter_names(self) -> frozenset[str]:
        names = super().given_filter_names()
        if any(METADATA_PARAM.fullmatch(name) for name in self.data):
            names |= {"metadata"}
        return names

    @classmethod
    def parameter_names(cls) -> frozenset[str]:
        """Every query parameter name this FilterSet reads as it is (filters and ordering);
        the `metadata[KEY]` parameters come on top (see is_metadata_param). `conditions`
        comes only from the search body."""
        return frozenset(cls.base_filters) - {"metadata", "conditions"} | frozenset(
            cls.ORDERING_PARAMS
        )

    @staticmethod
    def is_metadata_param(name: str) -> bool:
        return METADATA_PARAM.fullmatch(name) is not None

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        """Each filter with its value, then the total ordering (`sort`, then `id`)."""
        queryset = self.apply_filters(queryset)
        return queryset.order_by(*customer_ordering(list_sort_keys(self.form.cleaned_data)))


# -- Events -----------------------------------------------------------------------------------


class EventTypesField(ValueListField):
    """Event types, comma-separated or repeated; each must be a known type."""

    def validate(self, value):
        super().validate(value)
        unknown = [item for item in value if item not in CustomerEventType.values]
        if unknown:
            raise ValidationError(
                f"has an unknown type {unknown[0]!r}: the types are "
                + ", ".join(CustomerEventType.values),
                code="invalid_choice",
            )


class EventTypesFilter(ValueListFilter):
    field_class = EventTypesField


class EventFilterForm(forms.Form):
    order = StrictChoiceField(choices=ORDER_CHOICES, required=False)


class EventFilterSet(StrictFilterSet):
    """The event log's parameters: type, customer_id, created_at bounds; newest first."""

    type = EventTypesFilter(field_name="type")
    customer_id = SingleValueFilter(field_name="customer_id")

    class Meta:
        model = CustomerEvent
        fields: list[str] = []
        form = EventFilterForm

    MULTI_VALUE_PARAMS = frozenset({"type"})
    API_PARAMS = frozenset(
        {"type", "customer_id", "order", *(name for name in BOUND_PARAMS if "created_at" in name)}
    )

    @classmethod
    def get_filters(cls):
        filters = super().get_filters()
        for name, (field, lookup) in BOUND_PARAMS.items():
            if field == "created_at":
                filters[name] = TimestampBoundFilter(field_name=field, lookup_expr=lookup)
        return filters

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = self.apply_filters(queryset)
        descending = (self.form.cleaned_data.get("order") or DEFAULT_ORDER) == "desc"
        if descending:
            return queryset.order_by(F("created_at").desc(), F("id").desc())
        return queryset.order_by(F("created_at").asc(), F("id").asc())
