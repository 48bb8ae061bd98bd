"""Authentication, tenant and environment isolation, the error envelope, and staff sessions."""

import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from customers.models import ApiKey, Environment, Membership
from customers.outage import OutageLog
from customers.services import ServiceError, api_key_revoke, staff_user_upsert
from customers.tests.factories import at, make_customer, make_environment

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body


class TestApiKeys:
    def test_bearer_and_x_api_key_both_work(self, scope_a):
        customer = make_customer(scope_a.environment)
        for header in ("bearer", "x-api-key"):
            response = scope_a.client(header).get("/v1/customers")
            assert response.status_code == 200
            assert [item["id"] for item in response.json()["items"]] == [customer.id]

    def test_bearer_scheme_is_case_insensitive(self, scope_a):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"bearer {scope_a.key}")
        assert client.get("/v1/customers").status_code == 200

    def test_missing_key(self, scope_a):
        body = assert_error(APIClient().get("/v1/customers"), 401, "unauthenticated")
        assert "key" in body["error"]["message"]

    def test_401_says_how_to_authenticate(self, scope_a):
        response = APIClient().get("/v1/customers")
        assert response["WWW-Authenticate"].startswith("Bearer")

    @pytest.mark.parametrize(
        "headers",
        [
            {"HTTP_AUTHORIZATION": "Bearer sk_thisisnotakeythatexistsanywhere0123456789"},
            {"HTTP_X_API_KEY": "sk_thisisnotakeythatexistsanywhere0123456789"},
            {"HTTP_AUTHORIZATION": "Bearer"},
            {"HTTP_AUTHORIZATION": "Bearer short"},
            {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
            {"HTTP_X_API_KEY": ""},
            {"HTTP_X_API_KEY": "sk_" + "x" * 5000},
        ],
    )
    def test_wrong_or_malformed_key(self, scope_a, headers):
        make_customer(scope_a.environment)
        assert_error(APIClient().get("/v1/customers", **headers), 401, "unauthenticated")

    def test_a_modified_key_fails(self, scope_a):
        tampered = scope_a.key[:-1] + ("A" if scope_a.key[-1] != "A" else "B")
        response = APIClient().get("/v1/customers", HTTP_X_API_KEY=tampered)
        assert_error(response, 401, "unauthenticated")

    def test_revoked_key_stops_working_at_once(self, scope_a):
        client = scope_a.client()
        assert client.get("/v1/customers").status_code == 200
        api_key_revoke(prefix=scope_a.key[: ApiKey.PREFIX_LENGTH])
        body = assert_error(client.get("/v1/customers"), 401, "unauthenticated")
        assert "revoked" in body["error"]["message"]

    def test_keys_are_stored_hashed(self, scope_a):
        stored = ApiKey.objects.get(prefix=scope_a.key[: ApiKey.PREFIX_LENGTH])
        assert scope_a.key not in (stored.key_hash, stored.prefix, stored.name)
        assert len(stored.key_hash) == 64
        assert not ApiKey.objects.filter(key_hash=scope_a.key).exists()

    def test_last_used_at_is_refreshed_at_most_once_a_minute(self, scope_a):
        client = scope_a.client()
        prefix = scope_a.key[: ApiKey.PREFIX_LENGTH]
        assert ApiKey.objects.get(prefix=prefix).last_used_at is None
        client.get("/v1/customers")
        first = ApiKey.objects.get(prefix=prefix).last_used_at
        assert first is not None
        client.get("/v1/customers")
        assert ApiKey.objects.get(prefix=prefix).last_used_at == first
        ApiKey.objects.filter(prefix=prefix).update(last_used_at=first - timedelta(minutes=2))
        client.get("/v1/customers")
        assert ApiKey.objects.get(prefix=prefix).last_used_at > first - timedelta(seconds=1)


class TestIsolation:
    """Two tenants, and two environments of one tenant, sharing external ids and emails."""

    @pytest.fixture
    def twins(self, scope_a, scope_a_sandbox, scope_b):
        shared = {"external_id": "user_1", "email": "billing@acme.com", "name": "Acme"}
        return {
            "a": make_customer(scope_a.environment, **shared),
            "sandbox": make_customer(scope_a_sandbox.environment, **shared),
            "b": make_customer(scope_b.environment, **shared),
        }

    @pytest.mark.parametrize(
        "query", ["", "?external_id=user_1", "?email=BILLING@acme.com", "?external_ids=user_1"]
    )
    def test_each_key_sees_only_its_scope(self, twins, scope_a, scope_a_sandbox, scope_b, query):
        for name, scope in (("a", scope_a), ("sandbox", scope_a_sandbox), ("b", scope_b)):
            body = scope.client().get(f"/v1/customers{query}").json()
            assert [item["id"] for item in body["items"]] == [twins[name].id]
            assert body["pagination"]["total"] == 1
            assert body["items"][0]["tenant_id"] == scope.environment.tenant_id
            assert body["items"][0]["environment_id"] == scope.environment.id

    def test_ids_of_another_scope_match_nothing(self, twins, scope_a):
        other_ids = f"{twins['sandbox'].id},{twins['b'].id}"
        response = scope_a.client().get(f"/v1/customers?customer_ids={other_ids}")
        assert response.json() == {
            "items": [],
            "pagination": {
                "total": 0,
                "limit": 50,
                "offset": 0,
                "has_more": False,
                "next_cursor": None,
            },
        }
        own = scope_a.client().get(f"/v1/customers?customer_ids={other_ids},{twins['a'].id}")
        assert [item["id"] for item in own.json()["items"]] == [twins["a"].id]

    def test_children_of_another_scopes_parent_are_invisible(self, twins, scope_a, scope_b):
        make_customer(scope_b.environment, parent=twins["b"])
        response = scope_a.client().get(f"/v1/customers?parent_customer_ids={twins['b'].id}")
        assert response.json()["pagination"]["total"] == 0
        response = scope_b.client().get(f"/v1/customers?parent_customer_ids={twins['b'].id}")
        assert response.json()["pagination"]["total"] == 1

    def test_no_parameter_names_a_scope(self, twins, scope_a):
        for param in ("tenant_id=tenant_b", "environment_id=env_b", "tenant=tenant_b"):
            body = assert_error(
                scope_a.client().get(f"/v1/customers?{param}"), 400, "validation_error"
            )
            assert param.split("=")[0] in body["error"]["details"]


class TestErrorEnvelope:
    def test_unknown_route_is_a_404_envelope(self, scope_a):
        assert_error(scope_a.client().get("/v1/nothing-here"), 404, "not_found")
        assert_error(APIClient().get("/v1/"), 404, "not_found")

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("patch", "/v1/customers"),
            ("delete", "/v1/customers"),
            ("post", "/v1/customers/cust_X"),
            ("post", "/v1/customers/external/x"),
            ("delete", "/v1/customers/external/x"),
        ],
    )
    def test_unsupported_method_is_a_405_envelope(self, scope_a, method, path):
        response = getattr(scope_a.client(), method)(path, {}, format="json")
        body = assert_error(response, 405, "method_not_allowed")
        assert method.upper() in body["error"]["message"]

    def test_unexpected_error_is_a_500_envelope_without_details(self, scope_a, monkeypatch):
        def explode(**kwargs):
            raise RuntimeError("secret internals SELECT * FROM customers_customer")

        monkeypatch.setattr("customers.api.views.customer_page", explode)
        body = assert_error(scope_a.client().get("/v1/customers"), 500, "internal_error")
        assert "secret" not in str(body)
        assert "SELECT" not in str(body)
        assert "Traceback" not in str(body)

    def test_database_unreachable_is_a_503_envelope(self, scope_a, monkeypatch):
        def unreachable(**kwargs):
            raise OperationalError("connection refused")

        monkeypatch.setattr("customers.api.views.customer_page", unreachable)
        body = assert_error(scope_a.client().get("/v1/customers"), 503, "service_unavailable")
        assert "refused" not in str(body)

    def test_an_outage_is_logged_once_not_once_per_request(self, scope_a, monkeypatch, caplog):
        def unreachable(**kwargs):
            raise OperationalError("connection refused")

        monkeypatch.setattr("customers.api.views.customer_page", unreachable)
        monkeypatch.setattr("customers.outage.outage_log", OutageLog())
        client = scope_a.client()
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                assert client.get("/v1/customers").status_code == 503
        errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
        assert len(errors) == 1, [record.getMessage() for record in errors]
        assert "database unavailable (OperationalError)" in errors[0].getMessage()
        assert errors[0].exc_info is None  # no traceback, no connection parameters

    def test_too_many_query_fields_is_a_400_envelope(self, scope_a, settings):
        settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
        query = "&".join(f"customer_ids=c{number}" for number in range(20))
        body = assert_error(scope_a.client().get(f"/v1/customers?{query}"), 400, "validation_error")
        assert body["error"]["details"] == {"query": ["must have at most 10 parameters"]}

    def test_a_thousand_repeated_ids_plus_other_parameters_fit(self, scope_a):
        query = "&".join(f"customer_ids=c{number}" for number in range(1000))
        response = scope_a.client().get(f"/v1/customers?{query}&limit=5&sort=name&order=asc")
        assert response.status_code == 200


@pytest.fixture
def operator(scope_a, scope_a_sandbox, scope_b):
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = APIClient()
    client.force_login(user)
    return client


class TestStaffSession:
    """Logged-in staff use the browsable API in their current environment."""

    def test_staff_sees_their_first_environment_by_default(
        self, operator, scope_a, scope_a_sandbox
    ):
        in_a = make_customer(scope_a.environment)
        make_customer(scope_a_sandbox.environment)
        response = operator.get("/v1/customers")
        assert [item["id"] for item in response.json()["items"]] == [in_a.id]

    def test_switcher_changes_the_scope(self, operator, scope_a, scope_a_sandbox):
        make_customer(scope_a.environment)
        in_sandbox = make_customer(scope_a_sandbox.environment)
        response = operator.post(
            "/environment/switch", {"environment_id": "env_a_sandbox", "next": "/v1/customers"}
        )
        assert response.status_code == 302
        assert response["Location"] == "/v1/customers"
        response = operator.get("/v1/customers")
        assert [item["id"] for item in response.json()["items"]] == [in_sandbox.id]

    def test_switcher_refuses_another_tenants_environment(self, operator, scope_a, scope_b):
        in_a = make_customer(scope_a.environment)
        make_customer(scope_b.environment)
        operator.post("/environment/switch", {"environment_id": "env_b"})
        response = operator.get("/v1/customers")
        assert [item["id"] for item in response.json()["items"]] == [in_a.id]

    def test_switcher_ignores_an_offsite_next(self, operator, scope_a):
        response = operator.post(
            "/environment/switch",
            {"environment_id": "env_a", "next": "https://evil.example.com/"},
        )
        assert response["Location"] == "/admin/"

    def test_switcher_needs_a_login(self, scope_a):
        response = APIClient().post("/environment/switch", {"environment_id": "env_a"})
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_superuser_may_switch_to_any_environment(self, scope_a, scope_b):
        in_b = make_customer(scope_b.environment)
        admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        client = APIClient()
        client.force_login(admin)
        client.post("/environment/switch", {"environment_id": "env_b"})
        assert [item["id"] for item in client.get("/v1/customers").json()["items"]] == [in_b.id]

    def test_losing_the_membership_loses_the_environment(self, operator, scope_a, scope_b):
        operator.post("/environment/switch", {"environment_id": "env_a"})
        user = get_user_model().objects.get(username="operator")
        Membership.objects.filter(user=user).delete()
        Membership.objects.create(user=user, tenant_id="tenant_b")
        in_b = make_customer(scope_b.environment)
        make_customer(scope_a.environment)
        assert [item["id"] for item in operator.get("/v1/customers").json()["items"]] == [in_b.id]

    def test_browsable_api_renders_html_with_the_switcher(self, operator, scope_a):
        make_customer(scope_a.environment, name="Visible Customer")
        response = operator.get("/v1/customers", HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        html = response.content.decode()
        assert "Visible Customer" in html
        assert 'class="environment-switcher"' in html
        assert 'value="env_a_sandbox"' in html
        assert 'value="env_b"' not in html

    def test_staff_without_a_tenant_is_denied(self, scope_a):
        user = get_user_model().objects.create_user("lonely", password="pw", is_staff=True)
        client = APIClient()
        client.force_login(user)
        assert_error(client.get("/v1/customers"), 403, "permission_denied")

    def test_non_staff_user_is_denied(self, scope_a):
        user = get_user_model().objects.create_user("customer", password="pw")
        client = APIClient()
        client.force_login(user)
        assert_error(client.get("/v1/customers"), 403, "permission_denied")

    def test_a_key_wins_over_the_session(self, operator, scope_b):
        in_b = make_customer(scope_b.environment)
        operator.credentials(HTTP_X_API_KEY=scope_b.key)
        assert [item["id"] for item in operator.get("/v1/customers").json()["items"]] == [in_b.id]


def test_environment_ids_are_global(db):
    make_environment("tenant_a", "env_shared")
    with pytest.raises(ServiceError, match="belongs to tenant 'tenant_a'"):
        make_environment("tenant_b", "env_shared")
    assert Environment.objects.get(pk="env_shared").tenant_id == "tenant_a"


def test_timestamps_are_written_in_utc_whatever_the_servers_time_zone(scope_a, settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # +05:30: a local rendering would show it
    customer = make_customer(scope_a.environment, created_at=at("2024-01-15T10:30:00"))
    with timezone.override("Asia/Kolkata"):
        item = scope_a.client().get(f"/v1/customers/{customer.pk}").json()
    assert item["created_at"] == "2024-01-15T10:30:00Z"
