"""A webhook endpoint's journey in a real browser: create it in the admin pages, see its
secret once, rotate it behind a confirmation and see the new one once, and erase a
customer's personal data from its page (Chromium through Playwright, as
test_browser_admin.py)."""

import pytest
from playwright.sync_api import Page, expect

from customers.models import Customer, WebhookEndpoint
from customers.services import staff_user_upsert
from customers.tests.factories import make_customer, make_environment

USERNAME = "operator_hooks"
PASSWORD = "browser-webhooks-test-password"
ENDPOINTS = "/admin/customers/webhookendpoint/"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(allow_async_unsafe, transactional_db, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True  # the URL below is 127.0.0.1
    environment = make_environment("tenant_a", "env_a")
    staff_user_upsert(username=USERNAME, password=PASSWORD, tenant_ids=["tenant_a"])
    return environment


def log_in(page: Page, next_path: str) -> None:
    page.goto(f"/admin/login/?next={next_path}")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.locator("input[type=submit]").click()
    assert page.url.endswith(next_path), page.url


def click_and_load(page: Page, selector: str) -> None:
    with page.expect_navigation() as navigation:
        page.locator(selector).click()
    assert navigation.value is not None
    assert navigation.value.status == 200, navigation.value.url


def test_create_an_endpoint_see_its_secret_once_then_rotate_it(
    page: Page, page_errors: list[str], operator
):
    log_in(page, ENDPOINTS)
    click_and_load(page, ".object-tools a.addlink")
    expect(page.locator("#add-scope")).to_contain_text("tenant_a / env_a")
    page.fill("#id_url", "http://127.0.0.1:9/hooks")
    page.locator("input[name=enabled_events][value='*']").uncheck()
    page.locator("input[name=enabled_events][value='customer.created']").check()
    page.fill("#id_description", "Browser journey")
    click_and_load(page, "input[name=_save]")

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.enabled_events == ["customer.created"]
    expect(page.locator(".messagelist code.webhook-secret")).to_have_text(endpoint.secret)
    expect(page.locator("#result_list")).to_contain_text("http://127.0.0.1:9/hooks")

    # Once: the endpoint's page does not show it.
    click_and_load(page, "#result_list a:text('http://127.0.0.1:9/hooks')")
    expect(page.locator("#deliveries")).to_contain_text("No deliveries yet")
    assert endpoint.secret not in page.content()

    click_and_load(page, "#rotate-secret")
    expect(page.locator("#content")).to_contain_text("Are you sure")
    assert WebhookEndpoint.objects.get().secret == endpoint.secret  # asked, not done
    click_and_load(page, "#confirm-rotate")
    rotated = WebhookEndpoint.objects.get()
    assert rotated.secret != endpoint.secret
    assert rotated.previous_secret == endpoint.secret
    expect(page.locator(".messagelist code.webhook-secret")).to_have_text(rotated.secret)
    page.reload()
    assert rotated.secret not in page.content()
    assert page_errors == []


def test_erase_a_customer_from_its_page(page: Page, page_errors: list[str], operator):
    customer = make_customer(operator, name="Erin Private", email="erin@example.com")
    log_in(page, f"/admin/customers/customer/{customer.pk}/change/")
    click_and_load(page, "#erase-customer")
    expect(page.locator("#erase-warning")).to_contain_text("This cannot be undone")
    click_and_load(page, "#confirm-erase")
    expect(page.locator(".messagelist")).to_contain_text("1 customer erased.")
    expect(page.locator("#id_name")).to_have_value("[erased]")
    assert Customer.objects.get(pk=customer.pk).email is None
    assert page_errors == []
