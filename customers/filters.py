"""CustomerFilterSet: the one parser of customer list parameters, for the API, admin and exports.

It validates each parameter (values, lengths, NUL bytes, list sizes), filters the queryset
it is given and applies the total ordering (`sort`, then `id` in the same direction). The
scope is never a parameter: callers hand in a queryset already confined to it.
"""

import copy
from datetime import UTC, datetime, time, timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, OrderBy, QuerySet

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


class SearchFilter(SingleValueFilter):
    """Case-insensitive substring search over name, email and external id; terms are ANDed."""

    def filter(self, qs, value):
        for term in (value or "").split():
            qs = qs.filter(search_key__contains=term.lower())
        return qs


class DayField(CheapCopyFieldMixin, forms.DateField):
    pass


class DayBoundFilter(CheapCopyFilterMixin, django_filters.DateFilter):
    """A day bound on a timestamp (UTC): `after` from the day's start, `before` through its end.

    Compares the column itself (no `__date` transform), so the scope indexes still serve it.
    """

    field_class = DayField

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


SORT_CHOICES = [(name, name) for name in SORT_COLUMNS]


class CustomerFilterForm(forms.Form):
    """The form of CustomerFilterSet (its ``Meta.form``): the filters' fields are added to it;
    ``sort`` and ``order`` are fields of their own, which order rather than filter."""

    sort = StrictChoiceField(choices=SORT_CHOICES, required=False)
    order = StrictChoiceField(choices=ORDER_CHOICES, required=False)


class CustomerFilterSet(django_filters.FilterSet):
    # Shared by the API and the admin pages.
    status = StrictChoiceFilter(choices=CustomerStatus.choices)
    customer_ids = ValueListFilter(field_name="id")
    external_ids = ValueListFilter(field_name="external_id")
    external_id = SingleValueFilter(field_name="external_id")
    email = EmailFilter(field_name="email")
    parent_customer_ids = ValueListFilter(field_name="parent_id")
    # The admin pages' own filters (the API accepts only API_PARAMS).
    q = SearchFilter(label="Search")
    tenant = SingleValueFilter(field_name="tenant_id")
    environment = SingleValueFilter(field_name="environment_id")
    has_parent = HasParentFilter(choices=HAS_PARENT_CHOICES, label="Has parent")
    created_at_after = DayBoundFilter(field_name="created_at", bound="after")
    created_at_before = DayBoundFilter(field_name="created_at", bound="before")
    updated_at_after = DayBoundFilter(field_name="updated_at", bound="after")
    updated_at_before = DayBoundFilter(field_name="updated_at", bound="before")

    class Meta:
        model = Customer
        fields: list[str] = []
        form = CustomerFilterForm

    # Every parameter the FilterSet reads: its filters, then the form's ordering fields.
    ORDERING_PARAMS = ("sort", "order")
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

    @classmethod
    def parameter_names(cls) -> frozenset[str]:
        """Every parameter this FilterSet understands (filters and ordering)."""
        return frozenset(cls.base_filters) | frozenset(cls.ORDERING_PARAMS)

    def get_form_class(self):
        # django-filter builds a new form class for every instance; the filters never vary,
        # so build it once per FilterSet class.
        cls = type(self)
        if "_cached_form_class" not in cls.__dict__:
            cls._cached_form_class = super().get_form_class()
        return cls._cached_form_class

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        """Each filter with its value, then the total ordering (`sort`, then `id`)."""
        cleaned = self.form.cleaned_data
        for name, each in self.filters.items():
            queryset = each.filter(queryset, cleaned.get(name))
        sort = cleaned.get("sort") or DEFAULT_SORT
        order = cleaned.get("order") or DEFAULT_ORDER
        return queryset.order_by(*customer_ordering(sort, order))

    @property
    def error_details(self) -> dict[str, list[str]]:
        return {field: list(messages) for field, messages in self.errors.items()}
