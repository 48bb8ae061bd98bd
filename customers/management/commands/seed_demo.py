"""`seed_demo`: idempotent demo data (tenant, environments, customers, a staff login, a key)."""

from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from customers.demo import demo_customers
from customers.events import Actor, customer_created_events_record
from customers.models import ApiKey, Customer, hash_api_key
from customers.representation import customer_as_dict
from customers.services import (
    api_key_create,
    customer_counts_add,
    environment_ensure,
    staff_user_upsert,
)

DEMO_TENANT = "tenant_demo"
DEMO_ENVIRONMENTS = (("env_demo_production", 300, 42), ("env_demo_sandbox", 40, 7))
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"
# Documented in the README so that its curl examples work as written. Dev settings only.
DEMO_API_KEY = "sk_demo_key_for_local_use_only_0123456789"


class Command(BaseCommand):
    help = "Load demo customers, a staff login and an API key (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options):
        environments = {}
        for environment_id, count, seed in DEMO_ENVIRONMENTS:
            environment = environment_ensure(tenant_id=DEMO_TENANT, environment_id=environment_id)
            environments[environment_id] = environment
            planned = list(
                demo_customers(scope=environment.scope, count=count, seed=seed, id_tag="user")
            )
            existing = set(
                Customer.objects.filter(pk__in=[c.id for c in planned]).values_list("pk", flat=True)
            )
            missing = [c for c in planned if c.id not in existing]
            Customer.objects.bulk_create(missing, batch_size=500)
            customer_counts_add(
                scope=environment.scope, deltas=Counter(customer.status for customer in missing)
            )
            customer_created_events_record(
                customers=(customer_as_dict(customer) for customer in missing),
                scope=environment.scope,
                actor=Actor.command("seed_demo"),
            )
            self.stderr.write(
                f"{environment_id}: {len(missing)} customers added, {len(existing)} already there"
            )

        staff_user_upsert(username=DEMO_USERNAME, password=DEMO_PASSWORD, tenant_ids=[DEMO_TENANT])
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
