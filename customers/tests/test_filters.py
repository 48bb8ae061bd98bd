"""CustomerFilterSet on its own: parsing, validation, and that instances share no state."""

import pytest
from django.http import QueryDict

from customers.filters import CustomerFilterSet
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
    # A method filter calls its own FilterSet's method, not another instance's.
    assert first.filters["has_parent"].filter.f is first.filters["has_parent"]
    assert not hasattr(CustomerFilterSet.base_filters["has_parent"], "parent")


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
        ("created_at_after=2024-13-01", "created_at_after"),
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
