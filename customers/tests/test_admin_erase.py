"""Erasing personal data from the admin pages: the bulk action and the customer page's
button, each behind a confirmation page that says it cannot be undone, through
services.customer_erase with the operator as actor, confined to the operator's tenants."""

import pytest
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.contrib.messages import get_messages
from django.test import Client

from customers.models import Customer, CustomerEvent, CustomerEventType, CustomerStatus
from customers.services import staff_user_upsert
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/customers/customer/"
PERSONAL = {
    "name": "Grace Private",
    "email": "grace.private@example.com",
    "address_line1": "1 Hidden Road",
    "address_city": "Secret City",
    "metadata": {"phone": "+1 555 0100"},
}


@pytest.fixture
def operator(scope_a, scope_a_sandbox, scope_b) -> Client:
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    return client


def shown_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def erase_action(client, customers, **extra):
    data = {
        "action": "erase_selected",
        helpers.ACTION_CHECKBOX_NAME: [customer.pk for customer in customers],
        **extra,
    }
    return client.post(f"{CHANGELIST}?environment=all", data)


def assert_erased(customer: Customer, actor_id: str = "operator") -> None:
    customer.refresh_from_db()
    assert customer.name == "[erased]"
    assert customer.email is None
    assert customer.address_line1 == ""
    assert customer.status == CustomerStatus.ARCHIVED
    event = CustomerEvent.objects.filter(
        customer_id=customer.pk, type=CustomerEventType.ERASED
    ).get()
    assert (event.actor_type, event.actor_id) == ("user", actor_id)


def test_the_action_asks_first_and_says_it_cannot_be_undone(operator, scope_a):
    customer = make_customer(scope_a.environment, **PERSONAL)
    page = erase_action(operator, [customer])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Are you sure you want to erase the personal data of the selected customers?" in html
    assert "This cannot be undone" in html
    assert "Grace Private" in html
    assert 'name="action" value="erase_selected"' in html
    customer.refresh_from_db()
    assert customer.name == "Grace Private"  # nothing erased yet


def test_confirming_erases_each_through_the_service_with_plural_messages(operator, scope_a):
    one = make_customer(scope_a.environment, **PERSONAL)
    response = erase_action(operator, [one], post="yes")
    assert response.status_code == 302
    assert "1 customer erased." in shown_messages(response)
    assert_erased(one)
    two = make_customer(scope_a.environment, **(PERSONAL | {"email": "b@example.com"}))
    three = make_customer(scope_a.environment, name="Another Person")
    response = erase_action(operator, [two, three], post="yes")
    assert "2 customers erased." in shown_messages(response)
    assert_erased(two)
    assert_erased(three)


def test_the_action_cannot_reach_another_tenants_customer(operator, scope_b):
    theirs = make_customer(scope_b.environment, **PERSONAL)
    response = erase_action(operator, [theirs], post="yes")
    assert "erased." not in " ".join(shown_messages(response))
    theirs.refresh_from_db()
    assert theirs.name == "Grace Private"


def test_the_change_page_button_asks_on_a_get_and_erases_on_the_post(operator, scope_a):
    customer = make_customer(scope_a.environment, **PERSONAL)
    change = operator.get(f"{CHANGELIST}{customer.pk}/change/").content.decode()
    erase_url = f"{CHANGELIST}{customer.pk}/erase/"
    assert f'href="{erase_url}"' in change
    assert "Erase personal data" in change
    confirmation = operator.get(erase_url)
    assert confirmation.status_code == 200
    html = confirmation.content.decode()
    assert "Are you sure you want to erase the personal data of the customer" in html
    assert "This cannot be undone" in html
    assert 'method="post"' in html
    customer.refresh_from_db()
    assert customer.name == "Grace Private"
    response = operator.post(erase_url)
    assert response["Location"] == f"{CHANGELIST}{customer.pk}/change/"
    assert "1 customer erased." in shown_messages(response)
    assert_erased(customer)


def test_the_button_is_confined_to_the_operators_tenants(operator, scope_b):
    theirs = make_customer(scope_b.environment, **PERSONAL)
    assert operator.get(f"{CHANGELIST}{theirs.pk}/erase/").status_code == 404
    assert operator.post(f"{CHANGELIST}{theirs.pk}/erase/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Grace Private"


def test_erasing_again_changes_nothing(operator, scope_a):
    customer = make_customer(scope_a.environment, **PERSONAL)
    operator.post(f"{CHANGELIST}{customer.pk}/erase/")
    operator.post(f"{CHANGELIST}{customer.pk}/erase/")
    assert CustomerEvent.objects.filter(customer_id=customer.pk).count() == 1


def test_history_and_children_open_from_the_quoted_links_the_pages_write(operator, scope_a):
    """Django's links quote ids (`cust_5F01...`): the History page and the children on the
    change page must find the customer by them (as Django's own views unquote)."""
    parent = make_customer(scope_a.environment, name="Parent Co")
    make_customer(scope_a.environment, name="Child Co", parent=parent)
    quoted = quote(parent.pk)
    assert quoted != parent.pk
    change = operator.get(f"{CHANGELIST}{quoted}/change/")
    assert "Child Co" in change.content.decode()
    history = operator.get(f"{CHANGELIST}{quoted}/history/")
    assert history.status_code == 200
    assert "History: Parent Co" in history.content.decode()
