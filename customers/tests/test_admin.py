"""Admin pages: a login is required and staff see only their tenants' customers."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from customers.services import staff_user_upsert
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/customers/customer/"


@pytest.fixture
def operator_client(scope_a, scope_a_sandbox, scope_b) -> Client:
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    return client


def test_admin_needs_a_login():
    response = Client().get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_see_only_their_tenants_customers(operator_client, scope_a, scope_a_sandbox, scope_b):
    make_customer(scope_a.environment, name="Tenant A production")
    make_customer(scope_a_sandbox.environment, name="Tenant A sandbox")
    make_customer(scope_b.environment, name="Tenant B customer")
    html = operator_client.get(CHANGELIST).content.decode()
    assert "Tenant A production" in html
    assert "Tenant A sandbox" in html
    assert "Tenant B customer" not in html


def test_staff_cannot_open_another_tenants_customer(operator_client, scope_b):
    other = make_customer(scope_b.environment)
    response = operator_client.get(f"{CHANGELIST}{other.pk}/change/")
    assert response.status_code in (302, 404)
    assert other.name not in response.content.decode()


def test_superuser_sees_every_tenant(scope_a, scope_b):
    make_customer(scope_a.environment, name="Tenant A production")
    make_customer(scope_b.environment, name="Tenant B customer")
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    html = client.get(CHANGELIST).content.decode()
    assert "Tenant A production" in html
    assert "Tenant B customer" in html


def test_no_hard_delete(operator_client, scope_a):
    customer = make_customer(scope_a.environment)
    response = operator_client.post(f"{CHANGELIST}{customer.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert type(customer).objects.filter(pk=customer.pk).exists()


def test_every_admin_page_shows_the_environment_switcher(operator_client):
    for url in ("/admin/", CHANGELIST):
        html = operator_client.get(url).content.decode()
        assert 'class="environment-switcher"' in html, url
        assert 'value="env_a_sandbox"' in html
        assert 'value="env_b"' not in html


def test_tenants_and_keys_are_for_superusers_only(operator_client):
    for url in ("/admin/customers/tenant/", "/admin/customers/apikey/"):
        assert operator_client.get(url).status_code == 403
