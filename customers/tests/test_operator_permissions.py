"""Operators may manage their tenants' webhook endpoints: new staff users get the
permissions from staff_user_upsert, an existing operators' group from migration 0013."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from customers.services import OPERATORS_GROUP, staff_user_upsert

WEBHOOK_PERMISSIONS = {
    "customers.view_webhookendpoint",
    "customers.add_webhookendpoint",
    "customers.change_webhookendpoint",
    "customers.delete_webhookendpoint",
}


@pytest.mark.django_db
def test_a_staff_user_may_manage_webhook_endpoints():
    user = staff_user_upsert(username="op", password="pw", tenant_ids=["tenant_a"])
    assert user.get_all_permissions() >= WEBHOOK_PERMISSIONS


@pytest.mark.django_db(transaction=True)
def test_the_migration_grants_them_to_the_existing_operators_group():
    staff_user_upsert(username="op", password="pw", tenant_ids=["tenant_a"])
    group = Group.objects.get(name=OPERATORS_GROUP)
    group.permissions.remove(*Permission.objects.filter(codename__endswith="_webhookendpoint"))
    executor = MigrationExecutor(connection)
    executor.migrate([("customers", "0012_webhooks")])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("customers"))
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {name.split(".")[1] for name in WEBHOOK_PERMISSIONS} <= codenames
