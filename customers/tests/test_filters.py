"""CustomerFilterSet on its own: parsing, validation, and that instances share no state.

The FilterSet relies on django-filter's and Django's supported hooks (filter subclasses,
``Meta.form``, ``filter_queryset``, ``get_form_class``, ``__deepcopy__`` on its own field and
filter classes); the tests below pin what it relies on, so that an upgrade that changes any
of it fails here rather than silently changing results or speed."""

import pytest
from django.http import QueryDict

from customers.filters import CustomerFilterForm, CustomerFilterSet
from customers.models import Customer
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db


def filterset(query: str, queryset=None) -> CustomerFilterSet:
    return CustomerFilterSet(data=QueryDict(query), queryset=queryset or Customer.objects.all())


def test_instances_never_share_their_filters():
    first = filterset("has_parent=true")
    second = filterset("has_parent=false")
    for name in CustomerFilterSet.base_filters:
        assert first.filters[name] is not second.filters[name]
        assert first.filters[name].parent is first
        assert second.filters[name].parent is second
    assert not hasattr(CustomerFilterSet.base_filters["has_parent"], "parent")


def test_filters_are_subclasses_not_methods():
    """No `method=` filter: each filter's own class filters (nothing to rebind per copy)."""
    for name, each in CustomerFilterSet.base_filters.items():
        assert each.method is None, name
        assert type(each).__module__ == "customers.filters", name


def test_django_filter_copies_each_filter_shallowly():
    """django-filter deep-copies base_filters per instance; ours copy shallowly (cheap)."""
    instance = filterset("")
    for name, base in CustomerFilterSet.base_filters.items():
        copied = instance.filters[name]
        assert copied is not base
        assert copied.extra is base.extra, name  # shared: a shallow copy


def test_django_copies_each_form_field_cheaply_and_per_instance():
    first, second = filterset("email=a@example.com").form, filterset("").form
    # Every parameter is a field (the `metadata[KEY]` ones all read by the `metadata` field;
    # the search body's conditions by `conditions`).
    assert set(first.fields) == CustomerFilterSet.parameter_names() | {"metadata", "conditions"}
    for name in first.fields:
        assert first.fields[name] is not second.fields[name], name
        assert first.fields[name].widget is not second.fields[name].widget, name
        # Our __deepcopy__ ran (Django's own would have copied the messages too).
        assert first.fields[name].error_messages is second.fields[name].error_messages, name


def test_the_form_class_is_built_once_and_orders_with_its_own_fields(scope_a):
    first, second = filterset(""), filterset("sort=name")
    assert first.get_form_class() is second.get_form_class()
    assert issubclass(first.get_form_class(), CustomerFilterForm)
    assert "sort" not in CustomerFilterSet.base_filters  # ordering is not a filter
    bravo = make_customer(scope_a.environment, name="bravo")
    alpha = make_customer(scope_a.environment, name="Alpha")
    assert list(second.qs.values_list("id", flat=True)) == [bravo.id, alpha.id]  # desc
    ascending = filterset("sort=name&order=asc")
    assert list(ascending.qs.values_list("id", flat=True)) == [alpha.id, bravo.id]


def test_method_filters_apply_to_their_own_instance(scope_a):
    parent = make_customer(scope_a.environment)
    child = make_customer(scope_a.environment, parent=parent)
    with_parent = filterset("has_parent=true")
    without_parent = filterset("has_parent=false")
    assert list(with_parent.qs.values_list("id", flat=True)) == [child.id]
    assert list(without_parent.qs.values_list("id", flat=True)) == [parent.id]


def test_lists_accept_commas_and_repeats_and_drop_empty_items():
    form = filterset("customer_ids=a,,b&customer_ids=c&customer_ids=a").form
    assert form.is_valid()
    assert form.cleaned_data["customer_ids"] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=active", "status"),
        ("sort=id", "sort"),
        ("order=up", "order"),
        ("email=" + "x" * 256, "email"),
        ("external_id=a%00b", "external_id"),
        ("customer_ids=" + ",".join(str(n) for n in range(1001)), "customer_ids"),
        ("created_at[gte]=2024-13-01", "created_at[gte]"),
        ("has_parent=maybe", "has_parent"),
    ],
)
def test_invalid_values_are_errors_naming_the_parameter(query, field):
    instance = filterset(query)
    assert not instance.is_valid()
    assert list(instance.errors) == [field]


def test_search_terms_are_anded_and_case_insensitive(scope_a):
    match = make_customer(scope_a.environment, name="Globex Cloud Labs", email="ops@globex.example")
    make_customer(scope_a.environment, name="Globex Payments")
    make_customer(scope_a.environment, name="Cloud Nine")
    assert list(filterset("q=cLoUd+GLOBEX").qs.values_list("id", flat=True)) == [match.id]


@pytest.mark.parametrize(
    "query",
    ["", "email=A@b.example", "status=draft&sort=name&order=asc", "metadata[plan]=x&q=abc"],
)
def test_given_only_validates_the_given_parameters_and_filters_alike(query):
    """The API's FilterSets build a form of the given parameters only (faster: see
    StrictFilterSet); the rows are the same as with every field."""
    full = filterset(query)
    given = CustomerFilterSet(
        data=QueryDict(query), queryset=Customer.objects.all(), given_only=True
    )
    expected = {name.split("=")[0] for name in query.split("&") if name}
    expected = {"metadata" if name.startswith("metadata[") else name for name in expected}
    assert set(given.form.fields) == expected | {"sort", "order"}
    assert given.is_valid()
    assert full.is_valid()
    assert str(given.qs.query) == str(full.qs.query)
    again = CustomerFilterSet(
        data=QueryDict(query), queryset=Customer.objects.all(), given_only=True
    )
    assert again.get_form_class() is given.get_form_class()  # built once per set of names
