"""`seed_demo`: idempotent demo data (tenant, environments, customers, a staff login, a key)."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from customers.bulk import customer_row_object, write_customer_rows
from customers.events import Actor, customer_created_events_record
from customers.models import ApiKey, Customer, SavedView, hash_api_key
from customers.saved_views import saved_view_create
from customers.seeding import seed_customer_rows
from customers.services import api_key_create, environment_ensure, staff_user_upsert

DEMO_TENANT = "tenant_demo"
DEMO_ENVIRONMENTS = (("env_demo_production", 300, 42), ("env_demo_sandbox", 40, 7))
DEMO_EXTERNAL_IDS = "user_{:05d}"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"
# Documented in the README so that its curl examples work as written. Dev settings only.
DEMO_API_KEY = "sk_demo_key_for_local_use_only_0123456789"
DEMO_VIEW_SLUG = "drafts-by-name"


class Command(BaseCommand):
    help = "Load demo customers, a staff login and an API key (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options):
        environments = {}
        for environment_id, count, seed in DEMO_ENVIRONMENTS:
            environment = environment_ensure(tenant_id=DEMO_TENANT, environment_id=environment_id)
            environments[environment_id] = environment
            scope = environment.scope
            # The seeder's generator (the benchmark's data too), with short external ids.
            planned = list(
                seed_customer_rows(
                    scope=scope, count=count, seed=seed, external_ids=DEMO_EXTERNAL_IDS
                )
            )
            existing = set(
                Customer.objects.filter(pk__in=[row.id for row in planned]).values_list(
                    "pk", flat=True
                )
            )
            missing = [row for row in planned if row.id not in existing]
            write_customer_rows(rows=missing, scope=scope)
            customer_created_events_record(
                customers=(customer_row_object(row, scope) for row in missing),
                scope=scope,
                actor=Actor.command("seed_demo"),
            )
            self.stderr.write(
                f"{environment_id}: {len(missing)} customers added, {len(existing)} already there"
            )

        user = staff_user_upsert(
            username=DEMO_USERNAME, password=DEMO_PASSWORD, tenant_ids=[DEMO_TENANT]
        )
        if not SavedView.objects.filter(tenant_id=DEMO_TENANT, slug=DEMO_VIEW_SLUG).exists():
            # A shared view, as the README's `view=` example uses.
            saved_view_create(
                user=user,
                tenant_id=DEMO_TENANT,
                name="Drafts by name",
                params={"status": ["draft"], "sort": ["name"], "order": ["asc"]},
                columns=["name", "external_id", "email_address", "status"],
                shared=True,
            )
        raw_key = self.demo_key(environments["env_demo_production"])

        self.stdout.write("")
        self.stdout.write("Demo data ready.")
        self.stdout.write(
            f"  Admin login:  http://127.0.0.1:8000/admin/  {DEMO_USERNAME} / {DEMO_PASSWORD}"
        )
        self.stdout.write(f"  API key ({DEMO_TENANT}/env_demo_production):")
        self.stdout.write(f"  {raw_key}")

    def demo_key(self, environment) -> str:
        if not settings.CRM_ALLOW_DEMO_KEY:
            # Never a well-known key outside development: a fresh random one, shown once.
            _, raw_key = api_key_create(environment=environment, name="demo")
            return raw_key
        api_key = ApiKey.objects.filter(key_hash=hash_api_key(DEMO_API_KEY)).first()
        if api_key is None:
            api_key_create(environment=environment, name="demo (documented)", raw_key=DEMO_API_KEY)
        elif api_key.revoked_at is not None:
            self.stderr.write("The documented demo key was revoked; it stays revoked.")
        return DEMO_API_KEY
