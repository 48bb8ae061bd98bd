"""The event log: every change to a customer, from the API or the admin, in its transaction.

And the admin's History page, which shows those events (API changes included).
"""

import json

import pytest
from django.db import transaction
from django.test import Client

from customers.events import Actor
from customers.importer import CustomerImportError, import_customers_csv
from customers.models import ApiKey, CustomerEvent
from customers.services import customer_create, customer_update, staff_user_upsert
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db

ACTOR = Actor.command("tests")


def send(api, method: str, path: str, body=None, **headers):
    data = json.dumps(body) if body is not None else None
    return getattr(api, method)(path, data=data, content_type="application/json", **headers)


def events_of(customer_id: str) -> list[CustomerEvent]:
    return list(CustomerEvent.objects.filter(customer_id=customer_id).order_by("created_at", "id"))


def test_an_api_create_records_its_event_with_the_key_and_request_id(api, scope_a):
    response = send(
        api,
        "post",
        "/v1/customers",
        {"external_id": "e1", "name": "Acme"},
        HTTP_X_REQUEST_ID="req-123",
    )
    assert response.status_code == 201
    assert response["X-Request-ID"] == "req-123"
    created = response.json()
    [event] = events_of(created["id"])
    prefix = ApiKey.objects.get(environment=scope_a.environment).prefix
    assert event.id.startswith("evt_")
    assert (event.type, event.actor_type, event.actor_id) == ("customer.created", "api_key", prefix)
    assert event.request_id == "req-123"
    assert (event.tenant_id, event.environment_id) == ("tenant_a", "env_a")
    assert event.data == {"object": created, "previous_attributes": {}}


def test_an_update_records_the_old_value_of_each_changed_field(api, scope_a):
    parent = make_customer(scope_a.scope)
    customer = make_customer(scope_a.scope, name="Old", metadata={"a": "1"})
    response = send(
        api,
        "patch",
        f"/v1/customers/{customer.pk}",
        {"name": "New", "metadata": {"a": "2"}, "parent_customer_id": parent.pk, "email": None},
    )
    assert response.status_code == 200
    [event] = events_of(customer.pk)
    assert event.type == "customer.updated"
    assert event.data["object"] == response.json()
    assert event.data["previous_attributes"] == {
        "name": "Old",
        "email": customer.email,
        "parent_customer_id": None,
        "metadata": {"a": "1"},
    }


def test_a_write_that_changes_nothing_records_nothing(api, scope_a):
    customer = make_customer(scope_a.scope, name="Same")
    assert send(api, "patch", f"/v1/customers/{customer.pk}", {"name": "Same"}).status_code == 200
    assert events_of(customer.pk) == []


def test_archive_and_restore_are_their_own_event_types(api, scope_a):
    customer = make_customer(scope_a.scope)
    assert send(api, "delete", f"/v1/customers/{customer.pk}").status_code == 204
    assert send(api, "delete", f"/v1/customers/{customer.pk}").status_code == 204  # no change
    send(api, "patch", f"/v1/customers/{customer.pk}", {"status": "draft"})
    events = events_of(customer.pk)
    assert [event.type for event in events] == ["customer.archived", "customer.restored"]
    assert events[0].data["previous_attributes"] == {"status": "published"}
    assert events[1].data["previous_attributes"] == {"status": "archived"}
    assert events[1].data["object"]["status"] == "draft"


def test_refused_and_rolled_back_writes_record_nothing(api, scope_a):
    make_customer(scope_a.scope, external_id="taken")
    assert send(api, "post", "/v1/customers", {"external_id": "taken", "name": "N"}).status_code
    assert send(api, "post", "/v1/customers", {"external_id": "e", "name": ""}).status_code == 400

    def write_then_fail():
        with transaction.atomic():
            data = {"external_id": "rb", "name": "N"}
            customer_create(scope=scope_a.scope, data=data, actor=ACTOR)
            raise RuntimeError("the caller's transaction fails after the write")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert not CustomerEvent.objects.exists()


def test_each_event_is_in_its_scope(scope_a, scope_b):
    in_a = customer_create(scope=scope_a.scope, data={"external_id": "x", "name": "A"}, actor=ACTOR)
    in_b = customer_create(scope=scope_b.scope, data={"external_id": "x", "name": "B"}, actor=ACTOR)
    customer_update(scope=scope_b.scope, customer_id=in_b.pk, data={"name": "B2"}, actor=ACTOR)
    assert [(e.environment_id, e.actor_type) for e in events_of(in_a.pk)] == [("env_a", "command")]
    assert len(events_of(in_b.pk)) == 2


def test_an_incoming_request_id_is_kept_only_when_sane(api):
    kept = api.get("/v1/customers", HTTP_X_REQUEST_ID="abc.DEF_1-2")
    assert kept["X-Request-ID"] == "abc.DEF_1-2"
    replaced = api.get("/v1/customers", HTTP_X_REQUEST_ID="bad id; <script>")
    assert replaced["X-Request-ID"] != "bad id; <script>"
    assert len(replaced["X-Request-ID"]) == 32
    assert api.get("/v1/customers")["X-Request-ID"]


# --- the admin -------------------------------------------------------------------------------


@pytest.fixture
def operator(scope_a, scope_b) -> Client:
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    return client


def test_admin_edits_and_archives_are_events_by_the_user(operator, scope_a):
    customer = make_customer(scope_a.scope, name="Before", external_id="adm1")
    change_url = f"/admin/customers/customer/{customer.pk}/change/"
    form = {
        "external_id": "adm1",
        "name": "After",
        "email": customer.email,
        "status": "published",
        "parent": "",
        "metadata_key": [""],
        "metadata_value": [""],
        **{f"address_{part}": "" for part in ("line1", "line2", "city", "state", "country")},
        "address_postal_code": "",
    }
    assert operator.post(change_url, form).status_code == 302
    operator.post(
        "/admin/customers/customer/",
        {"action": "archive_selected", "_selected_action": [customer.pk], "post": "yes"},
    )
    events = events_of(customer.pk)
    assert (events[0].type, events[0].actor_type, events[0].actor_id) == (
        "customer.updated",
        "user",
        "operator",
    )
    assert events[0].data["previous_attributes"] == {"name": "Before"}
    assert "customer.archived" in [e.type for e in events]


def test_the_history_page_shows_api_changes(operator, api, scope_a):
    customer = make_customer(scope_a.scope, name="Old name")
    send(api, "patch", f"/v1/customers/{customer.pk}", {"name": "New name"})
    page = operator.get(f"/admin/customers/customer/{customer.pk}/history/")
    assert page.status_code == 200
    html = page.content.decode()
    prefix = ApiKey.objects.get(environment=scope_a.environment).prefix
    assert f"API key {prefix}" in html
    assert "Updated" in html
    assert "&quot;Old name&quot;" in html
    assert "&quot;New name&quot;" in html
    assert "1 change" in html


def test_the_history_page_of_another_tenants_customer_is_refused(operator, scope_b):
    other = make_customer(scope_b.scope)
    response = operator.get(f"/admin/customers/customer/{other.pk}/history/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/customers/customer/"


def test_the_history_page_says_when_nothing_was_recorded(operator, scope_a):
    customer = make_customer(scope_a.scope)
    html = operator.get(f"/admin/customers/customer/{customer.pk}/history/").content.decode()
    assert 'id="history-empty"' in html
    assert 'id="history-help"' in html


def test_an_import_records_one_created_event_per_row_in_bulk(scope_a, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text('id,external_id,name,metadata\nc1,e1,Ada,\nc2,e2,Bob,"{""k"": ""v""}"\n')
    import_customers_csv(path=path, tenant_id="tenant_a", environment_id="env_a")
    events = CustomerEvent.objects.order_by("customer_id")
    assert [(e.customer_id, e.type, e.actor_type, e.actor_id) for e in events] == [
        ("c1", "customer.created", "command", "import_customers"),
        ("c2", "customer.created", "command", "import_customers"),
    ]
    api_key = scope_a.client()
    for event in events:
        read = api_key.get(f"/v1/customers/{event.customer_id}").json()
        assert event.data == {"object": read, "previous_attributes": {}}


def test_a_refused_import_records_no_event(scope_a, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,name,parent_customer_id\ne1,Ada,\ne2,Bob,missing\n")
    with pytest.raises(CustomerImportError):
        import_customers_csv(path=path, tenant_id="tenant_a", environment_id="env_a")
    assert not CustomerEvent.objects.exists()


def test_every_api_error_carries_the_request_id(api):
    response = api.get("/v1/customers?limit=0", HTTP_X_REQUEST_ID="trace-42")
    assert response.json()["error"]["request_id"] == "trace-42"
    unrouted = api.get("/v1/nowhere", HTTP_X_REQUEST_ID="trace-43")
    assert unrouted.status_code == 404
    assert unrouted.json()["error"]["request_id"] == "trace-43"
