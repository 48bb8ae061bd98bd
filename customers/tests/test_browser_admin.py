"""An operator's journey through the customer admin pages, in a real browser.

Headless Chromium (Debian's, at /usr/bin/chromium) driven by Playwright's sync API against
pytest-django's ``live_server``, as in test_browser.py: without Chromium these tests skip,
except with ``CI=true``, where they fail. One browser serves the module; each test gets a
fresh context (no cookies) and logs in through the real login form.

The journey: log in, search, filter (and see a bad filter named), sort by a column header,
open a customer and edit it (metadata rows included), see the API's validation messages,
archive and restore (button and bulk action), export the filtered list as CSV, and never
see another tenant's customers.

``CRM_SCREENSHOTS=1`` also saves docs/screenshots/customer-list.png and customer-detail.png.
"""

import csv
import io
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from customers.exports import COLUMNS
from customers.models import Customer, Environment
from customers.services import staff_user_upsert
from customers.tests.contract import CUSTOMER_KEYS
from customers.tests.factories import at, make_customer, make_environment

VIEWPORT = {"width": 1400, "height": 900}
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"

USERNAME = "operator_a"
PASSWORD = "browser-admin-test-password"

CHANGELIST = "/admin/customers/customer/"
# The list opens on the current environment; these journeys span both of tenant A's.
ALL_ENVIRONMENTS = f"{CHANGELIST}?environment=all"
ROWS = "#result_list tbody tr"
ROW_NAMES = f"{ROWS} .field-name"


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_viewport() -> dict[str, int]:
    return VIEWPORT


# --- data -----------------------------------------------------------------------------------


@dataclass
class Crm:
    env_a: Environment
    env_a_sandbox: Environment
    env_b: Environment


@pytest.fixture
def crm(allow_async_unsafe, transactional_db) -> Crm:
    """Tenant A with two environments, tenant B with one, and a staff user of tenant A only.
    Each test adds the customers it needs."""
    data = Crm(
        env_a=make_environment("tenant_a", "env_a"),
        env_a_sandbox=make_environment("tenant_a", "env_a_sandbox"),
        env_b=make_environment("tenant_b", "env_b"),
    )
    staff_user_upsert(username=USERNAME, password=PASSWORD, tenant_ids=["tenant_a"])
    return data


# --- helpers --------------------------------------------------------------------------------


def log_in(page: Page, *, next_path: str = ALL_ENVIRONMENTS) -> None:
    """Through the real admin login form, landing on ``next_path``."""
    page.goto(f"/admin/login/?next={next_path}")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    submit(page, page.locator("input[type=submit]"))
    assert page.url.endswith(next_path), page.url
    expect(page.locator("#user-tools")).to_contain_text(USERNAME)


def submit(page: Page, control: Locator) -> None:
    """Click something that loads a new page, wait for that page, and require a 200."""
    with page.expect_navigation() as navigation:
        control.click()
    response = navigation.value
    assert response is not None
    assert response.status == 200, f"{response.status} at {response.url}"


def row_names(page: Page) -> list[str]:
    """The names in the change list, top to bottom (no table at all when nothing matches)."""
    expect(page.locator("#changelist")).to_be_visible()
    return [name.strip() for name in page.locator(ROW_NAMES).all_inner_texts()]


def open_change_page(page: Page, name: str) -> None:
    """From the change list, follow the customer's name link."""
    submit(page, page.locator(ROW_NAMES).get_by_role("link", name=name, exact=True))
    expect(page.locator("#customer_form")).to_be_visible()
    expect(page.locator("#id_name")).to_have_value(name)


def save(page: Page) -> None:
    submit(page, page.locator("input[name=_save]"))


def metadata_rows(page: Page) -> list[tuple[str, str]]:
    """The metadata rows of the change page, blank rows included, in page order."""
    keys = page.locator("input[name=metadata_key]").evaluate_all("i => i.map(x => x.value)")
    values = page.locator("input[name=metadata_value]").evaluate_all("i => i.map(x => x.value)")
    return list(zip(keys, values, strict=True))


def status_of(customer: Customer) -> str:
    customer.refresh_from_db()
    return customer.status


# --- 1. login -------------------------------------------------------------------------------


def test_login_through_the_admin_login_form(page: Page, page_errors: list[str], crm: Crm):
    make_customer(crm.env_a, name="Ada Lovelace Ltd")

    # Anonymous: the customer list sends the browser to the login page, and shows no data.
    response = page.goto(CHANGELIST)
    assert response is not None
    assert re.search(r"/admin/login/\?next=", page.url), page.url
    expect(page.locator("body")).not_to_contain_text("Ada Lovelace Ltd")

    # A wrong password is refused on the page.
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", "not-the-password")
    submit(page, page.locator("input[type=submit]"))
    expect(page.locator(".errornote")).to_contain_text("correct username and password")
    expect(page.locator("#user-tools")).to_have_count(0)

    # The right one lands on the page asked for, logged in, with the customers listed.
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    submit(page, page.locator("input[type=submit]"))
    assert CHANGELIST in page.url, page.url
    expect(page.locator("#user-tools")).to_contain_text(USERNAME)
    assert row_names(page) == ["Ada Lovelace Ltd"]
    assert page_errors == []


# --- 2. search ------------------------------------------------------------------------------


def test_search_by_a_mixed_case_email_fragment(page: Page, page_errors: list[str], crm: Crm):
    make_customer(crm.env_a, name="Globex Operations", email="Ops.Team@Globex.example")
    make_customer(crm.env_a_sandbox, name="Globex Sandbox", email="ops.team@globex.example")
    make_customer(crm.env_a, name="Initech", email="ops.team@initech.example")
    make_customer(crm.env_a, name="Hooli", email="billing@globex.example")
    log_in(page)
    assert sorted(row_names(page)) == ["Globex Operations", "Globex Sandbox", "Hooli", "Initech"]

    page.fill("#searchbar", "oPS.teAM@gLOBEX")
    submit(page, page.locator("#changelist-search input[type=submit]"))

    assert sorted(row_names(page)) == ["Globex Operations", "Globex Sandbox"]
    expect(page.locator(ROWS)).to_have_count(2)
    expect(page.locator("#searchbar")).to_have_value("oPS.teAM@gLOBEX")
    assert page_errors == []


# --- 3. filters -----------------------------------------------------------------------------


def test_sidebar_filters_status_and_created_range(page: Page, page_errors: list[str], crm: Crm):
    for name, status, created in [
        ("Draft in range", "draft", "2024-02-10T12:00:00"),
        ("Draft on the last day", "draft", "2024-02-29T23:59:00"),
        ("Draft too early", "draft", "2024-01-31T23:59:00"),
        ("Draft too late", "draft", "2024-03-01T00:00:00"),
        ("Published in range", "published", "2024-02-15T12:00:00"),
        ("Archived in range", "archived", "2024-02-15T12:00:00"),
    ]:
        make_customer(crm.env_a, name=name, status=status, created_at=at(created))
    log_in(page)
    expect(page.locator(ROWS)).to_have_count(6)

    # The bounds are the API's: From is created_at[gte], Before is created_at[lt].
    form = page.locator("#customer-filter-form")
    form.locator("#filter-status").select_option("draft")
    form.locator("#filter-created-after").fill("2024-02-01")
    form.locator("#filter-created-before").fill("2024-03-01")
    submit(page, form.locator("#apply-filters"))

    assert sorted(row_names(page)) == ["Draft in range", "Draft on the last day"]
    query = parse_qs(urlsplit(page.url).query)
    # Only what was filled in (the form's empty inputs leave no empty parameters behind).
    assert query == {
        "status": ["draft"],
        "environment": ["all"],
        "created_at[gte]": ["2024-02-01"],
        "created_at[lt]": ["2024-03-01"],
    }
    # The form shows the filters in force, and offers to clear them.
    expect(page.locator("#filter-status")).to_have_value("draft")
    expect(page.locator("#filter-created-after")).to_have_value("2024-02-01")
    expect(page.locator("#filter-created-before")).to_have_value("2024-03-01")
    expect(page.locator("#filter-errors")).to_have_count(0)

    # A time narrows it further (an offset sent as it is typed: the form encodes the "+").
    form.locator("#filter-created-after").fill("2024-02-29T23:30:00+00:00")
    submit(page, form.locator("#apply-filters"))
    assert row_names(page) == ["Draft on the last day"]
    expect(page.locator("#filter-created-after")).to_have_value("2024-02-29T23:30:00+00:00")

    # The admin's calendar writes a day as the bounds want it.
    page.locator("#filter-updated-before ~ .datetimeshortcuts a", has_text="Today").click()
    expect(page.locator("#filter-updated-before")).to_have_value(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    page.locator("#filter-updated-before").fill("")
    submit(page, page.get_by_role("link", name="Clear all filters"))
    expect(page.locator(ROWS)).to_have_count(6)
    assert page_errors == []


def test_an_invalid_bound_is_named_and_shown_under_its_field(page: Page, crm: Crm):
    make_customer(crm.env_a, name="Someone")
    log_in(page)
    assert row_names(page) == ["Someone"]

    page.locator("#filter-created-after").fill("2024-02-30")
    submit(page, page.locator("#apply-filters"))
    errors = page.locator("#filter-errors")
    expect(errors).to_be_visible()
    expect(errors.locator("li strong")).to_have_text(["created_at[gte]"])
    expect(errors).to_contain_text("'2024-02-30' is not a real date or time")
    # Under the field too, in the admin's red, the value kept for correcting.
    under = page.locator("#filter-created-after ~ .errorlist")
    expect(under).to_contain_text("must be an RFC 3339 date-time")
    assert under.evaluate("e => getComputedStyle(e).color") == errors.evaluate(
        "e => getComputedStyle(e).color"
    )
    assert under.evaluate("e => getComputedStyle(e).color") != "rgb(0, 0, 0)"
    expect(page.locator("#filter-created-after")).to_have_value("2024-02-30")
    # An unfiltered list would pass for a filtered one: no rows are shown instead.
    assert row_names(page) == []

    # The old day filters' links are named as what they are now: no filter of this list.
    page.goto(f"{CHANGELIST}?created_at_after=2024-01-01")
    expect(errors.locator("li")).to_have_text(["created_at_after: is not a filter of this list"])
    assert row_names(page) == []
    # A search word of two letters is the API's 400, here a message.
    page.goto(CHANGELIST)
    page.fill("#searchbar", "so")
    submit(page, page.locator("#changelist-search input[type=submit]"))
    expect(errors.locator("li strong")).to_have_text(["q"])
    expect(errors).to_contain_text("words must be at least 3 characters long")


def test_metadata_filters_as_key_and_value_rows(page: Page, page_errors: list[str], crm: Crm):
    make_customer(crm.env_a, name="Growth EU", metadata={"plan_tier": "growth", "region": "eu"})
    make_customer(crm.env_a, name="Growth US", metadata={"plan_tier": "growth", "region": "us"})
    make_customer(crm.env_a, name="Free EU", metadata={"plan_tier": "free", "region": "eu"})
    make_customer(crm.env_a, name="Growth Upper", metadata={"plan_tier": "Growth"})
    log_in(page)
    expect(page.locator(ROWS)).to_have_count(4)

    page.locator("#filter-metadata-key-1").fill("plan_tier")
    page.locator("#filter-metadata-value-1").fill("growth")
    submit(page, page.locator("#apply-filters"))
    # Exact and case-sensitive, as the API's: the URL holds the API's parameter.
    assert sorted(row_names(page)) == ["Growth EU", "Growth US"]
    assert parse_qs(urlsplit(page.url).query)["metadata[plan_tier]"] == ["growth"]
    # The pair in force, and a blank row for another: both must match.
    expect(page.locator("#filter-metadata-key-1")).to_have_value("plan_tier")
    page.locator("#filter-metadata-key-2").fill("region")
    page.locator("#filter-metadata-value-2").fill("eu")
    submit(page, page.locator("#apply-filters"))
    assert row_names(page) == ["Growth EU"]
    expect(page.locator("#filter-metadata-value-2")).to_have_value("eu")
    # Clearing a row removes its pair.
    page.locator("#filter-metadata-key-1").fill("")
    page.locator("#filter-metadata-value-1").fill("")
    submit(page, page.locator("#apply-filters"))
    assert sorted(row_names(page)) == ["Free EU", "Growth EU"]
    assert page_errors == []


def test_the_environment_filter_and_the_header_switcher_are_one_choice(
    page: Page, page_errors: list[str], crm: Crm
):
    make_customer(crm.env_a, name="Production Draft", status="draft")
    make_customer(crm.env_a, name="Production Live")
    make_customer(crm.env_a_sandbox, name="Sandbox Draft", status="draft")
    header = page.locator("#environment-switcher-select")
    sidebar = page.locator("#filter-environment")
    log_in(page, next_path=CHANGELIST)
    expect(header).to_have_value("env_a")
    expect(sidebar).to_have_value("env_a")
    assert sorted(row_names(page)) == ["Production Draft", "Production Live"]

    # Choosing the sandbox in the filter form switches the header too, and the URL holds
    # the filters only (the environment lives in the session).
    sidebar.select_option("env_a_sandbox")
    page.locator("#filter-status").select_option("draft")
    submit(page, page.locator("#apply-filters"))
    assert "environment=" not in page.url
    assert "status=draft" in page.url
    expect(header).to_have_value("env_a_sandbox")
    expect(sidebar).to_have_value("env_a_sandbox")
    assert row_names(page) == ["Sandbox Draft"]

    # Switching the header back keeps the filters and shows production's drafts.
    with page.expect_navigation():
        header.select_option("env_a")
    assert "status=draft" in page.url
    expect(sidebar).to_have_value("env_a")
    assert row_names(page) == ["Production Draft"]

    # "All of my environments" in the header lists every environment; both say so.
    with page.expect_navigation():
        header.select_option("all")
    assert "environment=all" in page.url
    expect(header).to_have_value("all")
    expect(sidebar).to_have_value("all")
    assert sorted(row_names(page)) == ["Production Draft", "Sandbox Draft"]
    expect(page.locator("#result_list thead th.column-tenant_environment")).to_be_visible()

    # "Clear all filters" goes back to the current environment, which the header names.
    submit(page, page.get_by_role("link", name="Clear all filters"))
    assert "environment=" not in page.url
    expect(header).to_have_value("env_a")
    expect(sidebar).to_have_value("env_a")
    assert sorted(row_names(page)) == ["Production Draft", "Production Live"]
    expect(page.locator("#result_list thead th.column-tenant_environment")).to_have_count(0)
    assert page_errors == []


# --- 4. sorting -----------------------------------------------------------------------------


def test_name_header_sorts_case_insensitively_both_ways(
    page: Page, page_errors: list[str], crm: Crm
):
    # External ids and creation times in an order unlike the names' (either would show
    # through if the header sorted by them), and names whose case-sensitive order differs.
    names = ["cherry", "Date", "apple", "Banana", "elderberry"]
    external_ids = ["e_1", "e_5", "e_3", "e_2", "e_4"]
    created = timezone.now() - timedelta(days=1)
    for number, (name, external_id) in enumerate(zip(names, external_ids, strict=True)):
        make_customer(
            crm.env_a,
            name=name,
            external_id=external_id,
            created_at=created + timedelta(minutes=number),
        )
    expected = ["apple", "Banana", "cherry", "Date", "elderberry"]
    log_in(page)
    assert row_names(page) == list(reversed(names))  # the default: newest first

    header = page.locator("#result_list thead th.column-name")
    submit(page, header.get_by_role("link", name="Name"))
    expect(header).to_have_class(re.compile(r"\bsorted ascending\b"))
    assert row_names(page) == expected

    submit(page, header.get_by_role("link", name="Name"))
    expect(header).to_have_class(re.compile(r"\bsorted descending\b"))
    assert row_names(page) == list(reversed(expected))
    assert page_errors == []


# --- 5. edit --------------------------------------------------------------------------------


def test_edit_name_and_add_metadata(page: Page, page_errors: list[str], crm: Crm):
    customer = make_customer(crm.env_a, name="Old Name GmbH", metadata={"plan": "basic"})
    make_customer(crm.env_a, name="Bystander")
    log_in(page)
    open_change_page(page, "Old Name GmbH")
    expect(page.locator("input[name=metadata_key]").first).to_have_value("plan")

    page.fill("#id_name", "New Name GmbH")
    blank_key = page.locator("input[name=metadata_key]").nth(1)
    blank_value = page.locator("input[name=metadata_value]").nth(1)
    expect(blank_key).to_have_value("")
    blank_key.fill("tier")
    blank_value.fill("gold")
    save(page)

    # Back on the list: the new name, not the old one.
    assert CHANGELIST in page.url, page.url
    expect(page.locator(".messagelist .success")).to_contain_text("New Name GmbH")
    assert sorted(row_names(page)) == ["Bystander", "New Name GmbH"]

    customer.refresh_from_db()
    assert customer.name == "New Name GmbH"
    assert customer.metadata == {"plan": "basic", "tier": "gold"}

    # Reopened, the page shows both metadata rows (in the database's key order), then the
    # blank rows for more.
    open_change_page(page, "New Name GmbH")
    rows = metadata_rows(page)
    assert sorted(rows[:2]) == [("plan", "basic"), ("tier", "gold")]
    assert rows[2:] == [("", "")] * 3
    assert page_errors == []


# --- 6. validation --------------------------------------------------------------------------


def test_invalid_email_and_country_show_the_api_messages(
    page: Page, page_errors: list[str], crm: Crm
):
    customer = make_customer(
        crm.env_a, name="Keep Me", email="keep@example.com", address_country="FR"
    )
    log_in(page)
    open_change_page(page, "Keep Me")

    page.fill("#id_email", "not-an-email")
    page.fill("#id_address_country", "XX")
    page.fill("#id_name", "Changed Along With Bad Fields")
    save(page)

    # Still the change page, with the API's messages beside the fields, the input kept.
    expect(page.locator(".errornote")).to_be_visible()
    # The messages sit under the form's labels, so without the API's field names.
    expect(page.locator(".field-email .errorlist")).to_have_text("Must be a valid email address")
    expect(page.locator(".field-address_country .errorlist")).to_have_text(
        "Must be an ISO 3166-1 alpha-2 country code (e.g. US) or empty"
    )
    expect(page.locator("#id_email")).to_have_value("not-an-email")
    # Refused again: still one blank metadata row per blank row shown, no more.
    assert metadata_rows(page) == [("", "")] * 3
    save(page)
    expect(page.locator(".errornote")).to_be_visible()
    assert metadata_rows(page) == [("", "")] * 3

    # Nothing was saved, not even the valid field.
    customer.refresh_from_db()
    assert customer.email == "keep@example.com"
    assert customer.address_country == "FR"
    assert customer.name == "Keep Me"
    assert page_errors == []


# --- 7. archive and restore -----------------------------------------------------------------


def test_archive_and_restore_buttons(page: Page, page_errors: list[str], crm: Crm):
    customer = make_customer(crm.env_a, name="Cyclical Corp")
    log_in(page)
    open_change_page(page, "Cyclical Corp")
    expect(page.locator("#restore-customer")).to_have_count(0)

    # Archive asks first, on a page of its own; "No, take me back" changes nothing.
    submit(page, page.locator("#archive-customer"))
    expect(page.locator("h1")).to_have_text("Are you sure?")
    expect(page.locator("#archived-customers")).to_contain_text("Cyclical Corp")
    assert status_of(customer) == "published"
    submit(page, page.get_by_role("link", name="No, take me back"))
    expect(page.locator("#id_name")).to_have_value("Cyclical Corp")
    assert status_of(customer) == "published"

    submit(page, page.locator("#archive-customer"))
    submit(page, page.get_by_role("button", name="Yes, I\u2019m sure"))
    expect(page.locator(".messagelist .success")).to_have_text("1 customer archived.")
    expect(page.locator("#restore-customer")).to_be_visible()
    expect(page.locator("#archive-customer")).to_have_count(0)
    expect(page.locator("#id_status")).to_have_value("archived")
    assert status_of(customer) == "archived"

    # Restore is one click.
    submit(page, page.locator("#restore-customer"))
    expect(page.locator(".messagelist .success")).to_have_text("1 customer restored.")
    expect(page.locator("#archive-customer")).to_be_visible()
    expect(page.locator("#id_status")).to_have_value("published")
    assert status_of(customer) == "published"
    assert page_errors == []


def test_bulk_archive_of_two_selected_rows(page: Page, page_errors: list[str], crm: Crm):
    first = make_customer(crm.env_a, name="First To Go")
    second = make_customer(crm.env_a_sandbox, name="Second To Go")
    stays = make_customer(crm.env_a, name="Stays Published")
    log_in(page)
    expect(page.locator(ROWS)).to_have_count(3)

    for customer in (first, second):
        page.locator(f"input[name=_selected_action][value='{customer.pk}']").check()
    expect(page.locator(".action-counter")).to_contain_text("2 of 3 selected")
    page.locator("select[name=action]").select_option(label="Archive the selected customers")
    submit(page, page.locator("button[name=index]"))

    # Django admin's "Are you sure?" step, naming the two; nothing is archived before it.
    expect(page.locator("h1")).to_have_text("Are you sure?")
    expect(page.locator("#archived-customers li")).to_have_count(2)
    expect(page.locator("#archived-customers")).to_contain_text("First To Go")
    expect(page.locator("#archived-customers")).to_contain_text("Second To Go")
    assert status_of(first) == "published"
    submit(page, page.get_by_role("button", name="Yes, I\u2019m sure"))

    expect(page.locator(".messagelist .success")).to_have_text("2 customers archived.")
    assert ALL_ENVIRONMENTS in page.url  # back on the list it came from
    assert status_of(first) == "archived"
    assert status_of(second) == "archived"
    assert status_of(stays) == "published"
    statuses = dict(
        zip(
            row_names(page),
            page.locator(f"{ROWS} .field-status").all_inner_texts(),
            strict=True,
        )
    )
    assert statuses == {
        "First To Go": "Archived",
        "Second To Go": "Archived",
        "Stays Published": "Published",
    }

    # The sidebar's status filter (and the list's total) agree.
    page.locator("#filter-status").select_option("archived")
    submit(page, page.locator("#apply-filters"))
    assert sorted(row_names(page)) == ["First To Go", "Second To Go"]
    expect(page.locator(".paginator")).to_contain_text("2 customers")
    assert page_errors == []


# --- 8. export ------------------------------------------------------------------------------


def test_export_csv_of_the_filtered_list(page: Page, crm: Crm):
    drafts = [
        make_customer(crm.env_a, name="Draft One", status="draft", metadata={"tier": "gold"}),
        make_customer(crm.env_a_sandbox, name="Draft Two", status="draft"),
    ]
    make_customer(crm.env_a, name="Published One", status="published")
    make_customer(crm.env_b, name="Other Tenant Draft", status="draft")
    log_in(page)
    expect(page.locator(ROWS)).to_have_count(3)

    page.locator("#filter-status").select_option("draft")
    submit(page, page.locator("#apply-filters"))
    assert sorted(row_names(page)) == ["Draft One", "Draft Two"]

    export = page.locator("#export-csv")
    expect(export).to_have_attribute("href", re.compile(r"export\.csv\?.*status=draft"))
    with page.expect_download() as download_info:
        export.click()
    download = download_info.value
    assert download.failure() is None
    assert download.suggested_filename == "customers.csv"
    text = Path(download.path()).read_text(encoding="utf-8")

    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == CUSTOMER_KEYS == list(COLUMNS)
    assert len(header) == 17
    rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert sorted(row["id"] for row in rows) == sorted(customer.pk for customer in drafts)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {"Draft One", "Draft Two"}
    assert by_name["Draft One"]["status"] == "draft"
    assert by_name["Draft One"]["metadata"] == '{"tier": "gold"}'
    assert by_name["Draft Two"]["environment_id"] == "env_a_sandbox"
    assert {row["tenant_id"] for row in rows} == {"tenant_a"}


# --- 9. tenant isolation --------------------------------------------------------------------


def test_another_tenants_customer_never_shows(page: Page, crm: Crm):
    make_customer(crm.env_a, name="Acme Tenant A", email="team@acme.example")
    make_customer(crm.env_a_sandbox, name="Acme Sandbox", email="sandbox@acme.example")
    theirs = make_customer(crm.env_b, name="Acme Tenant B", email="team@acme-b.example")
    log_in(page)

    # The positive case first: the list and the search do show tenant A's customers.
    assert sorted(row_names(page)) == ["Acme Sandbox", "Acme Tenant A"]
    expect(page.locator("#changelist")).not_to_contain_text("Acme Tenant B")

    page.fill("#searchbar", "acme")
    submit(page, page.locator("#changelist-search input[type=submit]"))
    assert sorted(row_names(page)) == ["Acme Sandbox", "Acme Tenant A"]

    # Searching for exactly their name, email or id finds nothing.
    for term in ("Acme Tenant B", "acme-b.example", theirs.external_id):
        page.fill("#searchbar", term)
        submit(page, page.locator("#changelist-search input[type=submit]"))
        assert row_names(page) == [], term

    # The sidebar offers only tenant A, and a forged tenant or environment shows nothing.
    tenants = page.locator("#filter-tenant option").evaluate_all("o => o.map(x => x.value)")
    environments = page.locator("#filter-environment option").evaluate_all(
        "o => o.map(x => x.value)"
    )
    assert tenants == ["", "tenant_a"]
    assert environments == ["all", "env_a", "env_a_sandbox"]
    for query in ("?tenant=tenant_b", "?environment=all&tenant=tenant_b"):
        page.goto(f"{CHANGELIST}{query}")
        assert row_names(page) == [], query
    # Tenant B's environment is refused, as the switcher refuses it: the list stays in the
    # current environment and says why.
    page.goto(f"{CHANGELIST}?environment=env_b")
    expect(page.locator(".messagelist .error")).to_contain_text("not one of yours")
    expect(page.locator("#environment-switcher-select")).to_have_value("env_a")
    assert row_names(page) == ["Acme Tenant A"]

    # Nor does its change page open.
    page.goto(f"{CHANGELIST}{theirs.pk}/change/")
    expect(page.locator("body")).not_to_contain_text("Acme Tenant B")
    expect(page.locator("#customer_form")).to_have_count(0)


# --- the favicon ----------------------------------------------------------------------------


def test_no_page_asks_for_a_missing_file(page: Page, crm: Crm):
    """Every page links the favicon, and /favicon.ico (asked for regardless) is there."""
    make_customer(crm.env_a, name="Anyone")
    missing: list[str] = []
    page.on("response", lambda response: response.status >= 400 and missing.append(response.url))
    log_in(page)
    for path in (CHANGELIST, f"{CHANGELIST}add/", "/admin/", "/v1/customers"):
        page.goto(path)
        icon = page.locator("link[rel=icon]")
        expect(icon).to_have_attribute("href", "/static/customers/favicon.svg")
        response = page.request.get(icon.get_attribute("href"))
        assert response.status == 200, path
        assert response.headers["content-type"] == "image/svg+xml"
    response = page.request.get("/favicon.ico")
    assert response.status == 200
    assert response.url.endswith("/static/customers/favicon.svg")
    assert missing == []


# --- layout: a 1400 px screen and a 390 px phone --------------------------------------------

NARROW = {"width": 390, "height": 844}

# What a person would see as broken, measured in the page: [] when nothing is.
LAYOUT_PROBLEMS = """(listMayScroll) => {
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth) {
        problems.push(`the page scrolls sideways: ${root.scrollWidth} > ${root.clientWidth}`);
    }
    const results = document.querySelector('#changelist-form .results');
    if (results && !listMayScroll && results.scrollWidth > results.clientWidth) {
        problems.push(`the list scrolls sideways: ${results.scrollWidth} > ${results.clientWidth}`);
    }
    for (const link of document.querySelectorAll('#result_list tbody .field-name a')) {
        const lines = link.getClientRects().length;
        if (lines > 2) problems.push(`"${link.textContent}" wraps to ${lines} lines`);
    }
    const sidebar = document.querySelector('#changelist-filter');
    const box = sidebar && sidebar.getBoundingClientRect();
    const context = document.createElement('canvas').getContext('2d');
    const filterInputs = '#changelist-filter select, #changelist-filter input';
    for (const input of document.querySelectorAll(filterInputs)) {
        const rect = input.getBoundingClientRect();
        if (rect.width === 0) continue;  // folded away
        if (rect.left < box.left || rect.right > box.right) {
            problems.push(`#${input.id} sticks out of the filters: ${rect.left}-${rect.right}`);
        }
        if (input.tagName === 'SELECT') {
            const style = getComputedStyle(input);
            context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
            const text = input.options[input.selectedIndex].text;
            const room = input.clientWidth - parseFloat(style.paddingLeft)
                - parseFloat(style.paddingRight) - 16;  // the arrow
            if (context.measureText(text).width > room) {
                problems.push(`#${input.id} cuts "${text}" off`);
            }
        }
    }
    for (const input of document.querySelectorAll('.metadata-rows input')) {
        const rect = input.getBoundingClientRect();
        if (rect.left < 0 || rect.right > root.clientWidth) {
            const label = input.getAttribute('aria-label');
            problems.push(`${label} is out of view: ${rect.left}-${rect.right}`);
        }
    }
    return problems;
}"""


def layout_problems(page: Page, *, list_may_scroll: bool = False) -> list[str]:
    """On a phone the list's table may scroll sideways in its own box (as Django's does);
    the page itself never."""
    return page.evaluate(LAYOUT_PROBLEMS, list_may_scroll)


def make_realistic_customers(crm: Crm) -> None:
    """Long names, long emails and parents, as in the demo data."""
    parent = make_customer(crm.env_a, name="Soylent Networks SAS", email="ap@soylent7.example.com")
    for number, name in enumerate(
        [
            "Krusty Networks Pty Ltd (Sydney)",
            "Zorg Security Pty Ltd (Toronto)",
            "Ollivander Security Pty Ltd",
            "Cyberdyne Studios Ltd",
            "Vandelay Foods AG",
        ]
    ):
        make_customer(
            crm.env_a,
            name=name,
            external_id=f"user_{number + 100:05d}",
            email=f"accounts@{name.split()[0].lower()}{number + 100}.example.com",
            parent=parent if number % 2 == 0 else None,
            metadata={"plan_tier": "growth", "account_manager": "m.rossi"},
        )
    make_customer(crm.env_a_sandbox, name="Sandbox Holdings International GmbH")


def test_the_list_fits_a_1400px_screen(page: Page, page_errors: list[str], crm: Crm):
    make_realistic_customers(crm)
    log_in(page, next_path=CHANGELIST)
    expect(page.locator(ROWS)).to_have_count(6)
    # With the admin's app sidebar open (as a new user finds it): every column in view.
    expect(page.locator("#nav-sidebar")).to_be_visible()
    assert layout_problems(page) == []
    for column in ("name", "email_address", "parent_link", "created", "updated"):
        expect(page.locator(f"#result_list thead th.column-{column}")).to_be_in_viewport()
    # Every environment: one more column (tenant / environment), in view with the app
    # sidebar still open.
    page.goto(ALL_ENVIRONMENTS)
    expect(page.locator("#nav-sidebar")).to_be_visible()
    expect(page.locator(ROWS)).to_have_count(7)
    assert layout_problems(page) == []
    columns = ("name", "email_address", "parent_link", "created", "updated", "tenant_environment")
    for column in columns:
        expect(page.locator(f"#result_list thead th.column-{column}")).to_be_in_viewport()
    scope = page.locator(f"{ROWS} .field-tenant_environment")
    expect(scope.first).to_have_text(re.compile(r"^tenant_a /\s?env_a(_sandbox)?$"))
    assert page_errors == []


def test_a_phone_gets_the_filters_first_and_the_whole_change_page(
    page: Page, page_errors: list[str], crm: Crm
):
    make_realistic_customers(crm)
    log_in(page, next_path=CHANGELIST)
    page.set_viewport_size(NARROW)
    page.goto(CHANGELIST)
    assert layout_problems(page, list_may_scroll=True) == []
    # The filters come before the rows, folded; opened, they are all there and usable.
    filters = page.locator("#changelist-filter")
    first_row = page.locator(ROWS).first
    assert filters.bounding_box()["y"] < first_row.bounding_box()["y"]
    expect(page.locator("#filter-status")).to_be_hidden()
    page.locator("#changelist-filter-header").click()
    expect(page.locator("#filter-status")).to_be_visible()
    assert layout_problems(page, list_may_scroll=True) == []
    page.locator("#filter-external-id").fill("user_00101")
    submit(page, page.locator("#apply-filters"))
    assert row_names(page) == ["Zorg Security Pty Ltd (Toronto)"]

    # The change page: every metadata input can be reached.
    open_change_page(page, "Zorg Security Pty Ltd (Toronto)")
    expect(page.locator("input[name=metadata_value]")).to_have_count(5)
    assert layout_problems(page) == []
    assert page_errors == []


# --- parent autocomplete --------------------------------------------------------------------


def test_parent_autocomplete_offers_live_customers_of_the_environment(
    page: Page, page_errors: list[str], crm: Crm
):
    live = make_customer(crm.env_a, name="Umbrella Holdings")
    make_customer(crm.env_a, name="Umbrella Archived", status="archived")
    make_customer(crm.env_a_sandbox, name="Umbrella Sandbox")
    make_customer(crm.env_b, name="Umbrella Other Tenant")
    child = make_customer(crm.env_a, name="Subsidiary Ltd")
    log_in(page)
    open_change_page(page, "Subsidiary Ltd")

    page.locator(".field-parent .select2-selection").click()
    page.locator(".select2-search__field").fill("umbrella")
    options = page.locator(".select2-results__option")
    expect(options).to_have_text([str(live)])
    options.first.click()
    save(page)

    child.refresh_from_db()
    assert child.parent_id == live.pk
    assert page_errors == []


# --- 10. realistic pages (and the screenshots) ----------------------------------------------


def test_realistic_list_and_detail_pages(page: Page, page_errors: list[str], crm: Crm):
    """A dozen customers, some with parents; the parent column links to the parent, whose
    page lists its children and shows its metadata. Screenshots with CRM_SCREENSHOTS=1."""
    now = timezone.now().replace(microsecond=0)
    # name, external id, email, status, index of the parent, city, country
    rows = [
        (
            "Northwind Traders",
            "northwind",
            "billing@northwind.example",
            "published",
            None,
            "Seattle",
            "US",
        ),
        ("Contoso Ltd", "contoso", "ap@contoso.example", "published", None, "Berlin", "DE"),
        ("Contoso Europe GmbH", "contoso-eu", "eu@contoso.example", "published", 1, "Munich", "DE"),
        ("Contoso Japan KK", "contoso-jp", "jp@contoso.example", "draft", 1, "Tokyo", "JP"),
        (
            "Fabrikam Inc.",
            "fabrikam",
            "accounts@fabrikam.example",
            "published",
            None,
            "Austin",
            "US",
        ),
        ("Fabrikam Research", "fabrikam-r", None, "draft", 4, "Cambridge", "GB"),
        ("Tailspin Toys", "tailspin", "hello@tailspin.example", "archived", None, "Lyon", "FR"),
        (
            "Wide World Importers",
            "wwi",
            "finance@wwi.example",
            "published",
            None,
            "Rotterdam",
            "NL",
        ),
        (
            "Adventure Works Cycles",
            "adventure",
            "billing@adventure.example",
            "published",
            None,
            "Denver",
            "US",
        ),
        ("Litware Labs", "litware", "ops@litware.example", "draft", None, "Dublin", "IE"),
        (
            "Proseware, Inc.",
            "proseware",
            "invoices@proseware.example",
            "published",
            None,
            "Toronto",
            "CA",
        ),
        (
            "Woodgrove Bank",
            "woodgrove",
            "treasury@woodgrove.example",
            "archived",
            None,
            "Zurich",
            "CH",
        ),
    ]
    created: list[Customer] = []
    for number, (name, external_id, email, status, parent, city, country) in enumerate(rows):
        created_at = now - timedelta(days=40 - 3 * number, hours=number * 5, minutes=number * 7)
        created.append(
            make_customer(
                crm.env_a_sandbox if external_id == "litware" else crm.env_a,
                name=name,
                external_id=external_id,
                email=email,
                status=status,
                parent=created[parent] if parent is not None else None,
                address_city=city,
                address_country=country,
                created_at=created_at,
                updated_at=created_at + timedelta(days=number % 4, hours=number),
            )
        )
    contoso = created[1]
    contoso.metadata = {"plan": "enterprise", "account_manager": "m.rossi", "region": "emea"}
    contoso.address_line1 = "Friedrichstrasse 68"
    contoso.address_postal_code = "10117"
    contoso.save()
    make_customer(crm.env_b, name="Never Shown Other Tenant")
    log_in(page)

    assert sorted(row_names(page)) == sorted(name for name, *_ in rows)
    expect(page.locator(".paginator")).to_contain_text("12 customers")
    screenshots = os.environ.get("CRM_SCREENSHOTS") == "1"
    if screenshots:
        # The admin's app sidebar collapsed (remembered for the context): room for columns.
        page.locator("#toggle-nav-sidebar").click()
        expect(page.locator("#main")).not_to_have_class(re.compile(r"\bshifted\b"))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "customer-list.png"), full_page=True)

    # The parent column of Contoso Europe links to Contoso's change page.
    europe_row = page.locator(ROWS).filter(has_text="Contoso Europe GmbH")
    submit(page, europe_row.locator(".field-parent_link a"))
    expect(page.locator("#id_name")).to_have_value("Contoso Ltd")

    children = page.locator("#customer-children")
    expect(children.locator("h2")).to_have_text("Children (2)")
    expect(children.locator("tbody tr td:first-child")).to_have_text(
        ["Contoso Europe GmbH", "Contoso Japan KK"]
    )
    assert {row for row in metadata_rows(page) if row != ("", "")} == {
        ("plan", "enterprise"),
        ("account_manager", "m.rossi"),
        ("region", "emea"),
    }
    if screenshots:
        page.screenshot(path=str(SCREENSHOTS / "customer-detail.png"), full_page=True)
    assert page_errors == []
