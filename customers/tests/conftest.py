"""Shared fixtures: two tenants, two environments of one tenant, keys, an API client."""

import os
from dataclasses import dataclass

import pytest
from django.db import connection
from rest_framework.test import APIClient

from customers.models import Environment
from customers.tests.factories import make_environment, make_key

IN_CI = os.environ.get("CI") == "true"


def pytest_collection_modifyitems(config, items):
    """`postgres` tests skip on SQLite (bin/test runs the suite again on PostgreSQL)."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (bin/test runs them with DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@dataclass
class ScopeWithKey:
    environment: Environment
    key: str

    @property
    def scope(self):
        return self.environment.scope

    def client(self, header: str = "bearer") -> APIClient:
        client = APIClient()
        if header == "bearer":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        else:
            client.credentials(HTTP_X_API_KEY=self.key)
        return client


@pytest.fixture
def scope_a(db) -> ScopeWithKey:
    """Tenant A, environment A (the usual caller)."""
    environment = make_environment("tenant_a", "env_a")
    return ScopeWithKey(environment, make_key(environment))


@pytest.fixture
def scope_a_sandbox(db) -> ScopeWithKey:
    """Tenant A's second environment."""
    environment = make_environment("tenant_a", "env_a_sandbox")
    return ScopeWithKey(environment, make_key(environment))


@pytest.fixture
def scope_b(db) -> ScopeWithKey:
    """Another tenant altogether."""
    environment = make_environment("tenant_b", "env_b")
    return ScopeWithKey(environment, make_key(environment))


@pytest.fixture
def api(scope_a) -> APIClient:
    return scope_a.client()
