"""Saved views in a real browser (headless Chromium, as test_browser_admin.py): filter the
list, choose its columns, save it, open it again, update it, and use it through the API.

``CRM_SCREENSHOTS=1`` also saves docs/screenshots/saved-views.png.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from customers.models import SavedView
from customers.services import staff_user_upsert
from customers.tests.factories import make_customer, make_environment, make_key
from customers.tests.test_browser import PASSWORD, USERNAME, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHANGELIST = "/admin/customers/customer/"
ROW_NAMES = "#result_list tbody tr .field-name"
SCREENSHOT = Path(settings.BASE_DIR) / "docs" / "screenshots" / "saved-views.png"


@pytest.fixture
def browser_viewport() -> dict[str, int]:
    return {"width": 1400, "height": 900}


@pytest.fixture
def key(allow_async_unsafe, transactional_db) -> str:
    environment = make_environment("tenant_a", "env_a")
    for name, status in [
        ("Zeta Draft", "draft"),
        ("Alpha Draft", "draft"),
        ("Live One", "published"),
    ]:
        make_customer(environment, name=name, status=status)
    staff_user_upsert(username=USERNAME, password=PASSWORD, tenant_ids=["tenant_a"])
    return make_key(environment)


def test_save_a_view_open_it_and_use_it_through_the_api(page: Page, key, page_errors, live_server):
    log_in(page)
    page.goto(f"{CHANGELIST}?status=draft&sort=name&order=asc")
    expect(page.locator(ROW_NAMES)).to_have_text(["Alpha Draft", "Zeta Draft"])
    # Hide the email column, then save the list as a shared view.
    page.locator("#column-chooser summary").click()
    page.locator('#columns-form input[value="email_address"]').uncheck()
    page.click("#columns-submit")
    expect(page.locator("th.column-email_address")).to_have_count(0)
    page.fill("#save-view-name", "Drafts A to Z")
    page.check("#save-view-shared")
    page.click("#save-view-submit")
    expect(page.locator(".messagelist")).to_contain_text("Saved the view")
    expect(page.locator("#saved-views li.selected")).to_contain_text("Drafts A to Z")
    expect(page.locator(ROW_NAMES)).to_have_text(["Alpha Draft", "Zeta Draft"])
    expect(page.locator("th.column-email_address")).to_have_count(0)
    if os.environ.get("CRM_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOT), full_page=False)

    # From an unfiltered list, the view brings it all back.
    page.goto(CHANGELIST)
    expect(page.locator(ROW_NAMES)).to_have_count(3)
    page.click("#saved-views a.saved-view-link")
    expect(page.locator(ROW_NAMES)).to_have_text(["Alpha Draft", "Zeta Draft"])

    # Update it with the list in the other order.
    page.goto(page.url.replace("order=asc", "order=desc"))
    page.click("#update-view-submit")
    expect(page.locator(".messagelist")).to_contain_text("now shows this list")
    assert SavedView.objects.get().params["order"] == ["desc"]

    # The API applies the shared view by its slug.
    api = page.context.request
    response = api.get(
        f"{live_server.url}/v1/customers?view=drafts-a-to-z", headers={"x-api-key": key}
    )
    assert response.status == 200
    assert [item["name"] for item in response.json()["items"]] == ["Zeta Draft", "Alpha Draft"]
    assert page_errors == []
