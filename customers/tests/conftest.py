"""Shared fixtures: two tenants, two environments of one tenant, keys, an API client."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import Browser, Page, sync_playwright
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


# --- real-browser tests (Playwright driving Debian's Chromium) -----------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def allow_async_unsafe() -> Iterator[None]:
    """Playwright's sync API runs an event loop in the test thread, and Django then refuses
    ORM calls there (test data, the transactional flush) as "async-unsafe" (known-traps.md).
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(allow_async_unsafe) -> Iterator[Browser]:
    """One headless Chromium per module; missing: skip, or fail when CI=true."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true, so the browser tests fail instead of skipping")
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_viewport() -> dict[str, int]:
    return {"width": 1280, "height": 900}


@pytest.fixture
def page(browser: Browser, live_server, browser_viewport) -> Iterator[Page]:
    """A fresh page in a fresh context (no cookies, no session) for each test."""
    context = browser.new_context(
        base_url=live_server.url, viewport=browser_viewport, accept_downloads=True
    )
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page_errors(page: Page) -> list[str]:
    """Uncaught JavaScript errors of the page, for tests to assert on."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors
