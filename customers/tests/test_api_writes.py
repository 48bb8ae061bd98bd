"""Customer writes: create, read, update, archive, lookup by external id, hierarchy rules."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from customers.models import Customer
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db

NEW = {"external_id": "user_12345", "name": "Acme Corporation", "email": "billing@acme.com"}


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    if field is not None:
        assert field in body["error"]["details"], body
        assert field in body["error"]["message"], body
    return body


def post(client, data, **headers):
    return client.post("/v1/customers", data, format="json", **headers)


def patch(client, customer_id, data, **headers):
    return client.patch(f"/v1/customers/{customer_id}", data, format="json", **headers)


class TestCreate:
    def test_creates_with_defaults_in_the_keys_scope(self, api, scope_a):
        response = post(api, {**NEW, "address_country": "us", "metadata": {"plan": "pro"}})
        assert response.status_code == 201
        body = response.json()
        assert body["id"].startswith("cust_")
        assert len(body["id"]) == 31
        assert body["status"] == "published"
        assert body["tenant_id"] == "tenant_a"
        assert body["environment_id"] == "env_a"
        assert body["address_country"] == "US"
        assert body["address_line1"] == ""
        assert body["parent_customer_id"] is None
        assert body["metadata"] == {"plan": "pro"}
        assert body["created_at"] == body["updated_at"]
        assert body["created_at"].endswith("Z")
        stored = Customer.objects.get(pk=body["id"])
        assert (stored.name_key, stored.email_key) == ("acme corporation", "billing@acme.com")
        assert api.get(f"/v1/customers/{body['id']}").json() == body

    def test_status_may_be_given(self, api):
        assert post(api, {**NEW, "status": "draft"}).json()["status"] == "draft"

    def test_server_owned_fields_are_ignored(self, api, scope_b):
        response = post(
            api,
            {
                **NEW,
                "id": "cust_CHOSEN",
                "tenant_id": "tenant_b",
                "environment_id": "env_b",
                "created_at": "2001-01-01T00:00:00Z",
                "updated_at": "2001-01-01T00:00:00Z",
            },
        )
        body = response.json()
        assert response.status_code == 201
        assert body["id"] != "cust_CHOSEN"
        assert (body["tenant_id"], body["environment_id"]) == ("tenant_a", "env_a")
        assert not body["created_at"].startswith("2001")

    def test_what_was_read_can_be_sent_back(self, api, scope_a):
        parent = make_customer(scope_a.environment)
        child = make_customer(scope_a.environment, parent=parent)
        read = api.get("/v1/customers?expand=parent_customer").json()["items"]
        item = next(item for item in read if item["id"] == child.id)
        assert patch(api, child.id, {**item, "name": "Renamed"}).status_code == 200

    @pytest.mark.parametrize("field", ["colour", "parent", "tenant"])
    def test_unknown_field_is_named(self, api, field):
        assert_error(post(api, {**NEW, field: "x"}), 400, "validation_error", field)
        assert not Customer.objects.exists()

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("external_id", ""),
            ("external_id", "x" * 256),
            ("name", ""),
            ("name", None),
            ("name", 42),
            ("email", "not-an-email"),
            ("email", "x" * 250 + "@a.com"),
            ("address_line1", "x" * 256),
            ("address_city", "x" * 101),
            ("address_postal_code", "x" * 21),
            ("address_country", "XX"),
            ("address_country", "USA"),
            ("metadata", {"k" * 41: "v"}),
            ("metadata", {"k": "v" * 501}),
            ("metadata", {f"k{n}": "v" for n in range(51)}),
            ("metadata", {"k": 1}),
            ("metadata", "plain"),
            ("status", "active"),
            ("parent_customer_id", 5),
            ("name", "nul\x00byte"),
            ("metadata", {"k": "nul\x00byte"}),
        ],
    )
    def test_invalid_values_are_named_and_change_nothing(self, api, field, value):
        assert_error(post(api, {**NEW, field: value}), 400, "validation_error", field)
        assert not Customer.objects.exists()

    @pytest.mark.parametrize("missing", ["external_id", "name"])
    def test_required_fields(self, api, missing):
        data = {key: value for key, value in NEW.items() if key != missing}
        assert_error(post(api, data), 400, "validation_error", missing)

    def test_body_must_be_a_json_object(self, api):
        assert_error(post(api, [NEW]), 400, "validation_error", "body")
        response = api.post("/v1/customers", "{not json", content_type="application/json")
        assert_error(response, 400, "validation_error")
        response = api.post("/v1/customers", {"external_id": "x", "name": "y"})  # multipart
        assert response.status_code == 415
        assert response.json()["success"] is False
        assert not Customer.objects.exists()

    def test_duplicate_live_external_id_is_a_409(self, api, scope_a):
        make_customer(scope_a.environment, external_id=NEW["external_id"])
        body = assert_error(post(api, NEW), 409, "already_exists")
        assert "external_id" in body["error"]["message"]
        assert Customer.objects.count() == 1

    def test_archived_external_id_may_be_reused(self, api, scope_a):
        make_customer(scope_a.environment, external_id=NEW["external_id"], status="archived")
        assert post(api, NEW).status_code == 201

    def test_same_external_id_in_another_scope_is_fine(self, api, scope_b):
        make_customer(scope_b.environment, external_id=NEW["external_id"])
        assert post(api, NEW).status_code == 201


class TestParent:
    def test_parent_of_the_same_scope(self, api, scope_a):
        parent = make_customer(scope_a.environment)
        response = post(api, {**NEW, "parent_customer_id": parent.id})
        assert response.status_code == 201
        assert response.json()["parent_customer_id"] == parent.id

    @pytest.mark.parametrize("where", ["other tenant", "other environment", "nowhere"])
    def test_parent_outside_the_scope_is_refused(self, api, scope_b, scope_a_sandbox, where):
        parent_id = {
            "other tenant": make_customer(scope_b.environment).id,
            "other environment": make_customer(scope_a_sandbox.environment).id,
            "nowhere": "cust_DOESNOTEXIST",
        }[where]
        response = post(api, {**NEW, "parent_customer_id": parent_id})
        assert_error(response, 400, "validation_error", "parent_customer_id")
        assert not Customer.objects.filter(external_id=NEW["external_id"]).exists()

    def test_archived_parent_is_refused(self, api, scope_a):
        parent = make_customer(scope_a.environment, status="archived")
        response = post(api, {**NEW, "parent_customer_id": parent.id})
        assert_error(response, 400, "validation_error", "parent_customer_id")

    def test_itself_is_refused(self, api, scope_a):
        customer = make_customer(scope_a.environment)
        response = patch(api, customer.id, {"parent_customer_id": customer.id})
        assert_error(response, 400, "validation_error", "parent_customer_id")

    def test_a_descendant_anywhere_down_the_chain_is_refused(self, api, scope_a):
        top = make_customer(scope_a.environment)
        middle = make_customer(scope_a.environment, parent=top)
        bottom = make_customer(scope_a.environment, parent=middle)
        for descendant in (middle, bottom):
            response = patch(api, top.id, {"parent_customer_id": descendant.id})
            assert_error(response, 400, "validation_error", "parent_customer_id")
        top.refresh_from_db()
        assert top.parent_id is None

    def test_moving_under_a_cousin_is_fine_and_null_detaches(self, api, scope_a):
        top = make_customer(scope_a.environment)
        left = make_customer(scope_a.environment, parent=top)
        right = make_customer(scope_a.environment, parent=top)
        assert patch(api, right.id, {"parent_customer_id": left.id}).status_code == 200
        response = patch(api, right.id, {"parent_customer_id": None})
        assert response.json()["parent_customer_id"] is None

    def test_keeping_an_archived_parent_is_allowed(self, api, scope_a):
        parent = make_customer(scope_a.environment)
        child = make_customer(scope_a.environment, parent=parent)
        assert api.delete(f"/v1/customers/{parent.id}").status_code == 204
        response = patch(api, child.id, {"name": "Still here", "parent_customer_id": parent.id})
        assert response.status_code == 200


class TestReadAndLookup:
    def test_another_scopes_id_is_a_404(self, api, scope_a, scope_b, scope_a_sandbox):
        own = make_customer(scope_a.environment)
        assert api.get(f"/v1/customers/{own.id}").status_code == 200
        for other in (scope_b, scope_a_sandbox):
            theirs = make_customer(other.environment)
            assert_error(api.get(f"/v1/customers/{theirs.id}"), 404, "not_found")
            assert other.client().get(f"/v1/customers/{theirs.id}").status_code == 200

    @pytest.mark.parametrize("bad_id", ["nope", "a%00b", "x" * 60, "cust_%F0%9F%98%80"])
    def test_unknown_or_impossible_ids_are_a_404(self, api, bad_id):
        assert_error(api.get(f"/v1/customers/{bad_id}"), 404, "not_found")

    def test_archived_customer_is_readable_by_id(self, api, scope_a):
        customer = make_customer(scope_a.environment, status="archived")
        assert api.get(f"/v1/customers/{customer.id}").json()["status"] == "archived"

    def test_lookup_by_external_id_finds_the_live_one(self, api, scope_a, scope_b):
        make_customer(scope_a.environment, external_id="user/1", status="archived")
        live = make_customer(scope_a.environment, external_id="user/1")
        make_customer(scope_b.environment, external_id="user/1")
        response = api.get("/v1/customers/external/user/1")
        assert response.status_code == 200
        assert response.json()["id"] == live.id

    def test_lookup_of_an_archived_only_external_id_is_a_404(self, api, scope_a):
        make_customer(scope_a.environment, external_id="gone", status="archived")
        assert_error(api.get("/v1/customers/external/gone"), 404, "not_found")

    def test_lookup_in_another_scope_is_a_404(self, api, scope_b):
        make_customer(scope_b.environment, external_id="theirs")
        assert_error(api.get("/v1/customers/external/theirs"), 404, "not_found")
        assert scope_b.client().get("/v1/customers/external/theirs").status_code == 200

    def test_lookup_with_a_nul_byte_is_a_400(self, api):
        assert_error(
            api.get("/v1/customers/external/a%00b"), 400, "validation_error", "external_id"
        )


class TestUpdate:
    def test_only_the_fields_sent_change_and_metadata_is_replaced(self, api, scope_a):
        customer = make_customer(
            scope_a.environment,
            name="Old",
            address_city="Paris",
            metadata={"a": "1", "b": "2"},
            created_at=at("2024-01-01T00:00:00"),
        )
        response = patch(api, customer.id, {"name": "New", "metadata": {"c": "3"}})
        body = response.json()
        assert response.status_code == 200
        assert body["name"] == "New"
        assert body["address_city"] == "Paris"
        assert body["metadata"] == {"c": "3"}
        assert body["created_at"] == "2024-01-01T00:00:00Z"
        assert body["updated_at"] > body["created_at"]
        assert api.get(f"/v1/customers/{customer.id}").json() == body
        assert Customer.objects.get(pk=customer.id).name_key == "new"

    def test_put_is_partial_too(self, api, scope_a):
        customer = make_customer(scope_a.environment, address_city="Paris")
        response = api.put(f"/v1/customers/{customer.id}", {"name": "Put"}, format="json")
        assert response.status_code == 200
        assert response.json()["address_city"] == "Paris"

    def test_updated_at_moves_on_every_change_created_at_never(self, api, scope_a):
        customer = make_customer(scope_a.environment, created_at=at("2024-01-01T00:00:00"))
        seen = [customer.updated_at]
        for name in ("One", "Two", "Three"):
            patch(api, customer.id, {"name": name})
            customer.refresh_from_db()
            assert customer.updated_at > seen[-1]
            assert customer.created_at == at("2024-01-01T00:00:00")
            seen.append(customer.updated_at)

    def test_a_request_that_changes_nothing_writes_nothing(self, api, scope_a):
        customer = make_customer(scope_a.environment, name="Same")
        before = customer.updated_at
        assert patch(api, customer.id, {"name": "Same"}).status_code == 200
        customer.refresh_from_db()
        assert customer.updated_at == before

    def test_invalid_update_changes_nothing(self, api, scope_a):
        customer = make_customer(scope_a.environment, name="Keep")
        response = patch(api, customer.id, {"name": "Changed", "email": "bad"})
        assert_error(response, 400, "validation_error", "email")
        customer.refresh_from_db()
        assert customer.name == "Keep"

    def test_taking_a_live_external_id_is_a_409(self, api, scope_a):
        make_customer(scope_a.environment, external_id="taken")
        customer = make_customer(scope_a.environment, external_id="mine")
        assert_error(patch(api, customer.id, {"external_id": "taken"}), 409, "already_exists")

    def test_restoring_into_a_taken_external_id_is_a_409(self, api, scope_a):
        archived = make_customer(scope_a.environment, external_id="dup", status="archived")
        make_customer(scope_a.environment, external_id="dup")
        assert_error(patch(api, archived.id, {"status": "published"}), 409, "already_exists")
        archived.refresh_from_db()
        assert archived.status == "archived"

    def test_another_scopes_customer_cannot_be_changed(self, api, scope_b):
        theirs = make_customer(scope_b.environment, name="Theirs")
        assert_error(patch(api, theirs.id, {"name": "Mine now"}), 404, "not_found")
        assert_error(api.delete(f"/v1/customers/{theirs.id}"), 404, "not_found")
        theirs.refresh_from_db()
        assert (theirs.name, theirs.status) == ("Theirs", "published")
        assert patch(scope_b.client(), theirs.id, {"name": "Renamed"}).status_code == 200

    def test_unknown_customer_is_a_404(self, api):
        assert_error(patch(api, "cust_NOPE", {"name": "x"}), 404, "not_found")


class TestArchive:
    def test_delete_archives_and_the_customer_stays_readable(self, api, scope_a):
        customer = make_customer(scope_a.environment, external_id="bye")
        response = api.delete(f"/v1/customers/{customer.id}")
        assert response.status_code == 204
        assert response.content == b""
        body = api.get(f"/v1/customers/{customer.id}").json()
        assert body["status"] == "archived"
        assert body["updated_at"] > body["created_at"]
        assert api.get("/v1/customers/external/bye").status_code == 404
        assert api.get("/v1/customers?status=archived").json()["pagination"]["total"] == 1
        assert post(api, {"external_id": "bye", "name": "Again"}).status_code == 201

    def test_deleting_twice_is_fine(self, api, scope_a):
        customer = make_customer(scope_a.environment)
        assert api.delete(f"/v1/customers/{customer.id}").status_code == 204
        assert api.delete(f"/v1/customers/{customer.id}").status_code == 204
        assert Customer.objects.filter(pk=customer.id).exists()


def test_writes_need_a_key(scope_a):
    customer = make_customer(scope_a.environment)
    client = APIClient()
    assert_error(post(client, NEW), 401, "unauthenticated")
    assert_error(patch(client, customer.id, {"name": "x"}), 401, "unauthenticated")
    assert_error(client.delete(f"/v1/customers/{customer.id}"), 401, "unauthenticated")
    customer.refresh_from_db()
    assert customer.status == "published"


def test_updated_at_is_recent(api, scope_a):
    response = post(api, NEW)
    customer = Customer.objects.get(pk=response.json()["id"])
    assert timezone.now() - customer.updated_at < timedelta(seconds=30)


def test_an_oversized_body_is_refused_before_it_is_read(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"external_id": "big", "name": "Big", "metadata": {"k": "v" * 400, "l": "w" * 400}}
    response = api.post("/v1/customers", {**body, "address_line1": "x" * 300}, format="json")
    assert_error(response, 413, "request_too_large", "body")
    assert not Customer.objects.exists()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    assert api.post("/v1/customers", body, format="json").status_code == 201
