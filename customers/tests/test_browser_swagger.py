"""Swagger UI (`/v1/docs/`) runs the Flexprice-compatible operations in a real browser:
authorize with a key, "Try it out" on the search and on the update by query, and read the
answers (headless Chromium, as in test_browser.py)."""

import json

import pytest
from playwright.sync_api import Page, expect

from customers.tests.factories import make_customer, make_environment, make_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def key(allow_async_unsafe, transactional_db) -> str:
    environment = make_environment("tenant_a", "env_a")
    make_customer(environment, external_id="acme", name="Acme Rockets")
    make_customer(environment, external_id="globex", name="Globex Cloud")
    return make_key(environment)


def authorize(page: Page, key: str) -> None:
    page.goto("/v1/docs/")
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(key)
    dialog.locator("button.modal-btn.authorize").first.click()  # the first scheme: bearer
    dialog.locator("button.btn-done").first.click()


def operation(page: Page, method: str, path: str):
    block = page.locator(f".opblock-{method}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    return block


def executed(block) -> dict:
    block.get_by_role("button", name="Execute").click()
    status = block.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200", timeout=15_000)
    return json.loads(
        block.locator(".live-responses-table .response-col_description pre").first.inner_text()
    )


def test_swagger_ui_runs_the_search(page: Page, key, page_errors):
    authorize(page, key)
    block = operation(page, "post", "/v1/customers/search")
    body = {
        "filters": [
            {
                "field": "name",
                "operator": "contains",
                "data_type": "string",
                "value": {"string": "rock"},
            }
        ],
        "sort": [{"field": "name", "direction": "asc"}],
    }
    block.locator("textarea.body-param__text").fill(json.dumps(body))
    answer = executed(block)
    assert [item["external_id"] for item in answer["items"]] == ["acme"]
    assert answer["pagination"]["total"] == 1
    assert page_errors == []


def test_swagger_ui_runs_the_update_by_query(page: Page, key, page_errors):
    authorize(page, key)
    block = operation(page, "put", "/v1/customers")
    block.locator('tr[data-param-name="external_customer_id"] input').fill("globex")
    block.locator("textarea.body-param__text").fill(json.dumps({"name": "Globex Corporation"}))
    answer = executed(block)
    assert (answer["external_id"], answer["name"]) == ("globex", "Globex Corporation")
    assert page_errors == []
