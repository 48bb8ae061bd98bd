"""CustomerFilterSet: the one parser of customer list parameters, for the API, admin and exports.

It validates each parameter (values, lengths, NUL bytes, list sizes), filters the queryset
it is given and applies the total ordering (`sort`, then `id` in the same direction). The
scope is never a parameter: callers hand in a queryset already confined to it.
"""

import copy
import functools
from datetime import UTC, datetime, time, timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, OrderBy, QuerySet
from django.http import QueryDict

from customers.models import Customer, CustomerStatus
from customers.text import text_problem

MAX_LIST_VALUES = 1000
MAX_VALUE_LENGTH = 255

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


def customer_ordering(sort: str, order: str) -> list[OrderBy]:
    """The total ordering for a sort: the column, then ``id`` in the same direction.

    A missing email sorts after every email ascending and before them descending (what
    PostgreSQL does by default; SQLite needs to be told).
    """
    column = SORT_COLUMNS[sort]
    descending = order == "desc"
    if column in NULLABLE_SORT_COLUMNS:
        first = F(column).desc(nulls_first=True) if descending else F(column).asc(nulls_last=True)
    else:
        first = F(column).desc() if descending else F(column).asc()
    tie_break = F("id").desc() if descending else F("id").asc()
    return [first, tie_break]


def check_single_value(value: str) -> None:
    problem = text_problem(value, max_length=MAX_VALUE_LENGTH)
    if problem:
        raise ValidationError(problem, code="text")


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


class ValueListField(forms.Field):
    """Comma-separated (`a,b`) or repeated (`x=a&x=b`) values; empty items are ignored."""

    widget = ValueListWidget

    def to_python(self, value):
        items: list[str] = []
        for raw in value or []:
            items.extend(part.strip() for part in str(raw).split(",") if part.strip())
        return list(dict.fromkeys(items))

    def validate(self, value):
        if len(value) > MAX_LIST_VALUES:
            raise ValidationError(f"must have at most {MAX_LIST_VALUES} values", code="too_many")
        for item in value:
            try:
                check_single_value(item)
            except ValidationError as error:
                raise ValidationError(f"values {error.messages[0]}", code=error.code) from None


class ValueListFilter(django_filters.Filter):
    field_class = ValueListField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


class SingleValueCharField(forms.CharField):
    def validate(self, value):
        super().validate(value)
        if value:
            check_single_value(value)


class SingleValueFilter(django_filters.CharFilter):
    field_class = SingleValueCharField


def choice_messages(choices) -> dict[str, str]:
    allowed = ", ".join(value for value, _ in choices)
    return {"invalid_choice": f"must be one of {allowed}"}


class SearchFilter(SingleValueFilter):
    """Case-insensitive substring search over name, email and external id; terms are ANDed."""

    def filter(self, qs, value):
        for term in (value or "").split():
            qs = qs.filter(search_key__contains=term.lower())
        return qs


class DayBoundFilter(django_filters.DateFilter):
    """A day bound on a timestamp (UTC): `after` from the day's start, `before` through its end.

    Compares the column itself (no `__date` transform), so the scope indexes still serve it.
    """

    def __init__(self, *, field_name: str, bound: str, **kwargs):
        kwargs.setdefault("error_messages", {"invalid": "must be a date (YYYY-MM-DD)"})
        super().__init__(field_name=field_name, **kwargs)
        self.bound = bound

    def filter(self, qs, value):
        if not value:
            return qs
        day_start = datetime.combine(value, time.min, tzinfo=UTC)
        if self.bound == "after":
            return qs.filter(**{f"{self.field_name}__gte": day_start})
        return qs.filter(**{f"{self.field_name}__lt": day_start + timedelta(days=1)})


def shared_field(field: forms.Field, memo: dict) -> forms.Field:
    return field


class CustomerFilterSet(django_filters.FilterSet):
    # Shared by the API and the admin pages.
    status = django_filters.ChoiceFilter(
        choices=CustomerStatus.choices, error_messages=choice_messages(CustomerStatus.choices)
    )
    customer_ids = ValueListFilter(field_name="id")
    external_ids = ValueListFilter(field_name="external_id")
    external_id = SingleValueFilter(field_name="external_id")
    email = SingleValueFilter(method="filter_email")
    parent_customer_ids = ValueListFilter(field_name="parent_id")
    sort = django_filters.ChoiceFilter(
        choices=[(name, name) for name in SORT_COLUMNS],
        method="order_afterwards",
        error_messages=choice_messages([(name, name) for name in SORT_COLUMNS]),
    )
    order = django_filters.ChoiceFilter(
        choices=ORDER_CHOICES,
        method="order_afterwards",
        error_messages=choice_messages(ORDER_CHOICES),
    )
    # The admin pages' own filters (the API accepts only API_PARAMS).
    q = SearchFilter(label="Search")
    tenant = SingleValueFilter(field_name="tenant_id")
    environment = SingleValueFilter(field_name="environment_id")
    has_parent = django_filters.ChoiceFilter(
        choices=HAS_PARENT_CHOICES,
        method="filter_has_parent",
        label="Has parent",
        error_messages=choice_messages(HAS_PARENT_CHOICES),
    )
    created_at_after = DayBoundFilter(field_name="created_at", bound="after")
    created_at_before = DayBoundFilter(field_name="created_at", bound="before")
    updated_at_after = DayBoundFilter(field_name="updated_at", bound="after")
    updated_at_before = DayBoundFilter(field_name="updated_at", bound="before")

    class Meta:
        model = Customer
        fields: list[str] = []

    # Parameters that may repeat; every other one must be given at most once.
    MULTI_VALUE_PARAMS = frozenset({"customer_ids", "external_ids", "parent_customer_ids"})
    # The list parameters of `GET /v1/customers`; the rest serve the admin pages.
    API_PARAMS = frozenset(
        {
            "status",
            "customer_ids",
            "external_ids",
            "external_id",
            "email",
            "parent_customer_ids",
            "sort",
            "order",
        }
    )

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        # django-filter's BaseFilterSet.__init__ (26.2), but with shallow copies of the
        # filters: its deep copy of all sixteen costs about a millisecond per request, and
        # a request changes nothing in a filter but `model`, `parent` and the binding of a
        # `method`, all set on the copy.
        if queryset is None:
            queryset = self._meta.model._default_manager.all()
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {name: copy.copy(each) for name, each in self.base_filters.items()}
        for each in self.filters.values():
            each.model = queryset.model
            each.parent = self
            if each.method is not None:
                each.method = each.method  # rebinds its FilterMethod to the copy

    def get_form_class(self):
        # django-filter builds a new form class for every instance; the filters never vary,
        # so build it once per FilterSet class (form instances still copy their fields).
        cls = type(self)
        if "_cached_form_class" not in cls.__dict__:
            form_class = super().get_form_class()
            # Django's form deep-copies its fields for each instance, so that one instance
            # may change or render its own; this form only validates parameters (the admin
            # writes its filter inputs itself), so its instances share the class's fields,
            # which are never changed: a deep copy of sixteen fields per request saved.
            for field in form_class.base_fields.values():
                field.__deepcopy__ = functools.partial(shared_field, field)
            cls._cached_form_class = form_class
        return cls._cached_form_class

    def filter_has_parent(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(parent__isnull=value != "true")

    def filter_email(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # Case-insensitive equality on the stored lowercase copy, which an index covers.
        return queryset.filter(email_key=value.lower())

    def order_afterwards(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # `sort` and `order` act together, in filter_queryset, after every filter.
        return queryset

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        sort = self.form.cleaned_data.get("sort") or DEFAULT_SORT
        order = self.form.cleaned_data.get("order") or DEFAULT_ORDER
        return queryset.order_by(*customer_ordering(sort, order))

    @property
    def error_details(self) -> dict[str, list[str]]:
        return {field: list(messages) for field, messages in self.errors.items()}
