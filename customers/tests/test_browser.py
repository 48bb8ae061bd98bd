"""The staff pages in a real browser: admin login, the browsable API, the environment switcher.

Headless Chromium (Debian's, at /usr/bin/chromium) driven by Playwright's sync API against
pytest-django's ``live_server``. Without Chromium these tests skip, except with ``CI=true``,
where they fail: a browser missing in CI must not pass unnoticed.

``CRM_SCREENSHOTS=1`` also saves docs/screenshots/browsable-api.png.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from customers.models import Environment
from customers.services import staff_user_upsert
from customers.tests.factories import make_customer, make_environment

SCREENSHOT = Path(settings.BASE_DIR) / "docs" / "screenshots" / "browsable-api.png"

USERNAME = "operator_a"
PASSWORD = "browser-test-password"

SWITCHER = "form.environment-switcher"
SELECT = "#environment-switcher-select"
RESPONSE = ".response-info"  # the browsable API's rendered response (status, headers, JSON)


# --- data -----------------------------------------------------------------------------------


@dataclass
class Crm:
    env_a: Environment
    env_a_sandbox: Environment
    env_b: Environment
    env_a_names: list[str]
    sandbox_names: list[str]
    env_b_names: list[str]


@pytest.fixture
def crm(allow_async_unsafe, transactional_db) -> Crm:
    """Tenant A with two environments, tenant B with one; distinct customers in each; a staff
    user of tenant A only."""
    env_a = make_environment("tenant_a", "env_a")
    env_a_sandbox = make_environment("tenant_a", "env_a_sandbox")
    env_b = make_environment("tenant_b", "env_b")
    data = Crm(
        env_a=env_a,
        env_a_sandbox=env_a_sandbox,
        env_b=env_b,
        env_a_names=["Ada Lovelace Ltd", "Grace Hopper GmbH"],
        sandbox_names=["Sandbox Sally Test Co"],
        env_b_names=["Bruno Othertenant SA"],
    )
    for environment, names in [
        (env_a, data.env_a_names),
        (env_a_sandbox, data.sandbox_names),
        (env_b, data.env_b_names),
    ]:
        for name in names:
            make_customer(environment, name=name)
    staff_user_upsert(username=USERNAME, password=PASSWORD, tenant_ids=["tenant_a"])
    return data


def log_in(page: Page) -> None:
    """Through the real admin login form."""
    page.goto("/admin/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text(USERNAME)


def expect_customers(page: Page, shown: list[str], hidden: list[str]) -> None:
    response = page.locator(RESPONSE)
    expect(response).to_contain_text("HTTP 200 OK")
    for name in shown:
        expect(response).to_contain_text(name)
    for name in hidden:
        expect(response).not_to_contain_text(name)


def switch_to(page: Page, environment_id: str, *, expected_path: str) -> None:
    """Choose an environment with the switcher; its onchange submits the form, the switch
    view redirects back to the page, which loads again."""
    with page.expect_navigation(url=re.compile(re.escape(expected_path) + "$")) as navigation:
        page.select_option(SELECT, environment_id)
    response = navigation.value
    assert response is not None
    assert response.status == 200
    switch_request = response.request.redirected_from
    assert switch_request is not None, "the page did not go through the switch view"
    assert switch_request.method == "POST"
    assert switch_request.url.endswith("/environment/switch")


def option_values(page: Page) -> list[str]:
    return page.locator(f"{SELECT} option").evaluate_all("options => options.map(o => o.value)")


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_switcher_changes_the_customers_of_the_browsable_api(
    page: Page, page_errors: list[str], crm: Crm
) -> None:
    log_in(page)

    response = page.goto("/v1/customers")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")  # the browsable API
    # The first environment of the user's tenants (env_a sorts before env_a_sandbox).
    expect(page.locator(SELECT)).to_have_value("env_a")
    expect_customers(page, shown=crm.env_a_names, hidden=crm.sandbox_names + crm.env_b_names)
    expect(page.locator(RESPONSE)).to_contain_text('"total": 2')
    if os.environ.get("CRM_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    switch_to(page, "env_a_sandbox", expected_path="/v1/customers")
    expect(page.locator(SELECT)).to_have_value("env_a_sandbox")
    expect_customers(page, shown=crm.sandbox_names, hidden=crm.env_a_names + crm.env_b_names)
    expect(page.locator(RESPONSE)).to_contain_text('"total": 1')

    # The choice lives in the session: it survives a reload.
    page.reload()
    expect(page.locator(SELECT)).to_have_value("env_a_sandbox")
    expect_customers(page, shown=crm.sandbox_names, hidden=crm.env_a_names + crm.env_b_names)
    assert page_errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_switcher_offers_only_the_users_tenants_environments(page: Page, crm: Crm) -> None:
    log_in(page)
    page.goto("/v1/customers")

    assert option_values(page) == ["env_a", "env_a_sandbox"]  # not tenant_b's env_b
    expect(page.locator(SELECT)).not_to_contain_text("tenant_b")

    # A forged option (the form posts whatever value it holds) is refused by the server:
    # the environment stays env_a and tenant B's customers stay out of sight.
    page.locator(SELECT).evaluate("select => select.add(new Option('tenant_b / env_b', 'env_b'))")
    switch_to(page, "env_b", expected_path="/v1/customers")
    expect(page.locator(SELECT)).to_have_value("env_a")
    expect_customers(page, shown=crm.env_a_names, hidden=crm.env_b_names)
    expect(page.locator(".alert-danger")).to_contain_text("That environment is not one of yours.")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_index_shows_the_switcher(page: Page, page_errors: list[str], crm: Crm) -> None:
    log_in(page)  # lands on /admin/

    switcher = page.locator(SWITCHER)
    expect(switcher).to_be_visible()
    expect(page.locator(SELECT)).to_have_value("env_a")
    assert option_values(page) == ["env_a", "env_a_sandbox"]

    # Switching on an admin page returns to it, and the API follows the same choice.
    switch_to(page, "env_a_sandbox", expected_path="/admin/")
    expect(page.locator(SELECT)).to_have_value("env_a_sandbox")
    page.goto("/v1/customers")
    expect_customers(page, shown=crm.sandbox_names, hidden=crm.env_a_names)
    assert page_errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_anonymous_browser_gets_401_without_customer_data(page: Page, crm: Crm) -> None:
    response = page.goto("/v1/customers")
    assert response is not None
    assert response.status == 401
    body = page.content()
    assert "unauthenticated" in body  # the error envelope, rendered by the browsable API
    for name in crm.env_a_names + crm.sandbox_names + crm.env_b_names:
        assert name not in body
    expect(page.locator(SWITCHER)).to_have_count(0)
