"""The per-status counts behind the cheap totals always equal COUNT(*), whatever wrote."""

import re

import pytest
from django.core.management import call_command
from django.test import Client

from customers.services import staff_user_upsert
from customers.tests.factories import make_customer
from customers.tests.helpers import assert_counts_match_the_customers, run_together


@pytest.mark.django_db
def test_api_writes_keep_the_counts(scope_a, scope_b):
    api = scope_a.client()
    ids = [
        api.post("/v1/customers", {"external_id": f"c{n}", "name": "N"}, format="json").json()["id"]
        for n in range(5)
    ]
    api.post("/v1/customers", {"external_id": "d", "name": "D", "status": "draft"}, format="json")
    scope_b.client().post("/v1/customers", {"external_id": "c0", "name": "B"}, format="json")
    api.patch(f"/v1/customers/{ids[0]}", {"status": "draft"}, format="json")
    api.patch(f"/v1/customers/{ids[1]}", {"name": "renamed"}, format="json")
    api.delete(f"/v1/customers/{ids[2]}")
    api.delete(f"/v1/customers/{ids[2]}")  # archiving twice counts once
    api.patch(f"/v1/customers/{ids[2]}", {"status": "published"}, format="json")
    api.delete(f"/v1/customers/{ids[3]}")
    api.post("/v1/customers", {"external_id": "c1", "name": "dup"}, format="json")  # a 409
    assert_counts_match_the_customers()
    body = api.get("/v1/customers?limit=1&status=archived").json()
    assert body["pagination"]["total"] == 1
    assert api.get("/v1/customers?limit=1").json()["pagination"]["total"] == 6


@pytest.mark.django_db
def test_admin_bulk_actions_keep_the_counts(scope_a):
    customers = [make_customer(scope_a.environment) for _ in range(4)]
    user = staff_user_upsert(username="op", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    selected = [customer.pk for customer in customers[:3]]
    url = "/admin/customers/customer/"
    # The archive's confirmation step, confirmed (post=yes), as its page's form posts it.
    client.post(url, {"action": "archive_selected", "_selected_action": selected, "post": "yes"})
    assert_counts_match_the_customers()
    html = client.get(f"{url}?status=archived").content.decode()
    assert re.search(r"\b3 customers\b", html), "the archived list counts three customers"
    client.post(url, {"action": "restore_selected", "_selected_action": selected[:2]})
    assert_counts_match_the_customers()
    html = client.get(f"{url}?status=archived").content.decode()
    assert re.search(r"\b1 customer\b(?!s)", html), "the archived list counts one customer"


@pytest.mark.django_db
def test_seed_demo_keeps_the_counts():
    call_command("seed_demo", stdout=None, stderr=None)
    call_command("seed_demo", stdout=None, stderr=None)
    assert_counts_match_the_customers()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_keep_the_counts(scope_a):
    created = [make_customer(scope_a.environment) for _ in range(16)]

    def write(index: int) -> int:
        api = scope_a.client()
        customer = created[index]
        if index % 4 == 0:
            return api.delete(f"/v1/customers/{customer.pk}").status_code
        if index % 4 == 1:
            api.delete(f"/v1/customers/{customer.pk}")
            return api.patch(
                f"/v1/customers/{customer.pk}", {"status": "draft"}, format="json"
            ).status_code
        if index % 4 == 2:
            body = {"external_id": f"new_{index}", "name": "New"}
            return api.post("/v1/customers", body, format="json").status_code
        return api.patch(
            f"/v1/customers/{customer.pk}", {"status": "draft"}, format="json"
        ).status_code

    statuses = run_together(16, write)
    assert all(status in (200, 201, 204) for status in statuses), statuses
    assert_counts_match_the_customers()


@pytest.mark.django_db
def test_an_import_keeps_the_counts(scope_a, tmp_path):
    from customers.importer import import_customers_csv

    make_customer(scope_a.environment, status="draft")
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        "external_id,name,status\nx1,One,published\nx2,Two,archived\nx3,Three,\nx4,Four,draft\n"
    )
    import_customers_csv(path=csv_file, tenant_id="tenant_a", environment_id="env_a")
    assert_counts_match_the_customers()
    assert (
        scope_a.client().get("/v1/customers?status=draft&limit=1").json()["pagination"]["total"]
        == 2
    )
