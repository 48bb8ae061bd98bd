"""Test data builders: scopes with keys, customers with sensible defaults."""

import itertools
from datetime import UTC, datetime

from django.utils import timezone

from customers.counts import customer_counts_add
from customers.models import Customer, Environment
from customers.scope import Scope
from customers.services import api_key_create, environment_ensure

_sequence = itertools.count(1)


def make_environment(tenant_id: str = "tenant_a", environment_id: str = "env_a") -> Environment:
    return environment_ensure(tenant_id=tenant_id, environment_id=environment_id)


def make_key(environment: Environment, name: str = "test") -> str:
    _, raw_key = api_key_create(environment=environment, name=name)
    return raw_key


def make_customer(scope: Scope | Environment, **fields) -> Customer:
    """A saved customer of ``scope``; every contract field may be overridden."""
    if isinstance(scope, Environment):
        scope = scope.scope
    number = next(_sequence)
    values = {
        "external_id": f"ext_{number}",
        "name": f"Customer {number}",
        "email": f"customer{number}@example.com",
    }
    values.update(fields)
    created_at = values.pop("created_at", None) or timezone.now()
    updated_at = values.pop("updated_at", None) or created_at
    customer = Customer(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        created_at=created_at,
        updated_at=updated_at,
        **values,
    )
    customer.save()
    # Like every write path, keep the per-status counts in step.
    customer_counts_add(scope=scope, deltas={customer.status: 1})
    return customer


def at(text: str) -> datetime:
    """`at("2024-01-15T10:30:00")` -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
