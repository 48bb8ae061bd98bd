"""The management commands whose interfaces tools outside the code rely on."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from customers.models import ApiKey, Customer, CustomerEvent, Environment, Membership, Tenant
from customers.tests.factories import make_customer, make_environment

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class TestCreateApiKey:
    def test_creates_tenant_environment_and_a_working_key_printed_last(self):
        out, _ = run(
            "create_api_key", "--tenant", "t_new", "--environment", "env_new", "--name", "ci"
        )
        raw_key = out.strip().splitlines()[-1]
        assert raw_key.startswith("sk_")
        assert len(raw_key) >= 35
        assert Environment.objects.get(pk="env_new").tenant_id == "t_new"
        api_key = ApiKey.objects.get(prefix=raw_key[: ApiKey.PREFIX_LENGTH])
        assert api_key.name == "ci"
        assert (api_key.tenant_id, api_key.environment_id) == ("t_new", "env_new")
        make_customer(Environment.objects.get(pk="env_new"))
        response = APIClient().get("/v1/customers", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        assert response.status_code == 200
        assert response.json()["pagination"]["total"] == 1

    def test_reuses_an_existing_environment(self):
        make_environment("t1", "env1")
        run("create_api_key", "--tenant", "t1", "--environment", "env1")
        run("create_api_key", "--tenant", "t1", "--environment", "env1")
        assert ApiKey.objects.filter(environment_id="env1").count() == 2
        assert Environment.objects.count() == 1

    def test_environment_of_another_tenant_is_an_error(self):
        make_environment("t1", "env1")
        with pytest.raises(CommandError, match="belongs to tenant 't1'"):
            run("create_api_key", "--tenant", "t2", "--environment", "env1")
        assert not Tenant.objects.filter(pk="t2").exists()
        assert not ApiKey.objects.exists()

    @pytest.mark.parametrize("tenant", ["", "has space", "x" * 65, "nul\x00"])
    def test_bad_identifiers_are_refused(self, tenant):
        with pytest.raises(CommandError):
            run("create_api_key", "--tenant", tenant, "--environment", "env1")
        assert not ApiKey.objects.exists()


class TestRevokeApiKey:
    def test_revokes_at_once(self):
        out, _ = run("create_api_key", "--tenant", "t1", "--environment", "env1")
        raw_key = out.strip().splitlines()[-1]
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw_key)
        assert client.get("/v1/customers").status_code == 200
        run("revoke_api_key", raw_key[: ApiKey.PREFIX_LENGTH])
        assert client.get("/v1/customers").status_code == 401

    def test_unknown_prefix_is_an_error(self):
        with pytest.raises(CommandError, match="no API key"):
            run("revoke_api_key", "sk_nothere0")


class TestCreateStaffUser:
    def test_creates_a_staff_user_with_exactly_those_tenants(self):
        run(
            "create_staff_user",
            "--username",
            "op",
            "--password",
            "pw-123456",
            "--tenant",
            "t1",
            "--tenant",
            "t2",
        )
        user = get_user_model().objects.get(username="op")
        assert user.is_staff
        assert not user.is_superuser
        assert user.check_password("pw-123456")
        assert set(Membership.objects.filter(user=user).values_list("tenant_id", flat=True)) == {
            "t1",
            "t2",
        }
        assert user.has_perm("customers.view_customer")
        assert user.has_perm("customers.add_customer")
        assert user.has_perm("customers.change_customer")
        assert not user.has_perm("customers.delete_customer")

    def test_running_again_replaces_the_memberships_and_password(self):
        run(
            "create_staff_user",
            "--username",
            "op",
            "--password",
            "first-pw",
            "--tenant",
            "t1",
            "--tenant",
            "t2",
        )
        run("create_staff_user", "--username", "op", "--password", "second-pw", "--tenant", "t3")
        user = get_user_model().objects.get(username="op")
        assert list(Membership.objects.filter(user=user).values_list("tenant_id", flat=True)) == [
            "t3"
        ]
        assert user.check_password("second-pw")
        assert get_user_model().objects.filter(username="op").count() == 1


class TestSeedDemo:
    def test_is_idempotent_and_prints_a_working_login_and_key(self):
        out, _ = run("seed_demo")
        raw_key = out.strip().splitlines()[-1].strip()
        assert "demo / demo-password" in out
        count = Customer.objects.count()
        assert count >= 300
        run("seed_demo")
        assert Customer.objects.count() == count
        assert ApiKey.objects.count() == 1
        # Each demo customer was recorded as created once, by the command.
        events = CustomerEvent.objects.filter(type="customer.created", actor_id="seed_demo")
        assert events.count() == count
        response = APIClient().get("/v1/customers?limit=5", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        assert response.status_code == 200
        assert (
            response.json()["pagination"]["total"]
            == Customer.objects.filter(environment_id="env_demo_production").count()
        )
        assert get_user_model().objects.get(username="demo").check_password("demo-password")

    def test_demo_data_covers_statuses_parents_metadata_and_missing_emails(self):
        run("seed_demo")
        production = Customer.objects.filter(environment_id="env_demo_production")
        assert set(production.values_list("status", flat=True)) == {
            "published",
            "draft",
            "archived",
        }
        assert production.filter(parent__isnull=False).count() >= 10
        assert production.filter(email__isnull=True).exists()
        # Most customers have metadata, a few have none (both cases show in the pages).
        assert production.filter(metadata={}).exists()
        assert production.exclude(metadata={}).count() > production.count() * 0.8
        for customer in production.filter(parent__isnull=False).select_related("parent"):
            assert customer.parent.environment_id == customer.environment_id

    def test_never_creates_the_documented_key_outside_development(self, settings):
        settings.CRM_ALLOW_DEMO_KEY = False
        out, _ = run("seed_demo")
        raw_key = out.strip().splitlines()[-1].strip()
        assert raw_key != "sk_demo_key_for_local_use_only_0123456789"
        response = APIClient().get(
            "/v1/customers", HTTP_X_API_KEY="sk_demo_key_for_local_use_only_0123456789"
        )
        assert response.status_code == 401
        assert APIClient().get("/v1/customers", HTTP_X_API_KEY=raw_key).status_code == 200
