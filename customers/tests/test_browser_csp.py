"""The Content-Security-Policy breaks no page: headless Chromium (as in test_browser.py) opens
every kind of HTML page the product serves, records each CSP violation (the document's
``securitypolicyviolation`` events and Chromium's console errors) and uses what the page's
scripts do: the admin's calendar and actions, the parent autocomplete, the environment
switcher, the import page's progress poll, the dashboard, the browsable API (its filters
and forms) and Swagger UI's operations.

First, the pages do carry the policy and it refuses inline code: a test that passes with
no policy at all would prove nothing.
"""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.import_jobs import run_import_jobs
from customers.models import ImportJob, ImportStatus
from customers.services import staff_user_upsert
from customers.tests.factories import make_customer, make_environment, make_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

USERNAME = "operator_csp"
PASSWORD = "browser-csp-test-password"
CHANGELIST = "/admin/customers/customer/"

RECORD_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (event) => {
    window.reportCspViolation(
        `${event.violatedDirective} blocked ${event.blockedURI || 'inline'} at ` +
        `${event.sourceFile || document.location.pathname}:${event.lineNumber}` +
        ` (${event.sample || ''})`
    );
});
"""


@pytest.fixture
def violations(page: Page) -> list[str]:
    """Every CSP violation of the test's pages, whichever page it happened on."""
    found: list[str] = []

    def report(violation: str) -> None:
        found.append(violation)

    page.expose_function("reportCspViolation", report)
    page.add_init_script(RECORD_VIOLATIONS)

    def console(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            found.append(f"console: {message.text}")

    page.on("console", console)
    return found


@pytest.fixture
def crm(allow_async_unsafe, transactional_db):
    environment = make_environment("tenant_a", "env_a")
    make_environment("tenant_a", "env_a_sandbox")
    parent = make_customer(environment, external_id="umbrella", name="Umbrella Holdings")
    make_customer(environment, external_id="acme", name="Acme Rockets", metadata={"tier": "a"})
    make_customer(environment, external_id="sub", name="Subsidiary Ltd", parent=parent)
    staff_user_upsert(username=USERNAME, password=PASSWORD, tenant_ids=["tenant_a"])
    return environment


def log_in(page: Page, next_path: str) -> None:
    page.goto(f"/admin/login/?next={next_path}")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.locator("input[type=submit]").click()
    assert page.url.endswith(next_path), page.url


def visit(page: Page, path: str) -> str:
    """Open ``path`` and return its Content-Security-Policy (there must be one)."""
    response = page.goto(path)
    assert response is not None
    assert response.status == 200, f"{response.status} at {path}"
    policy = response.headers.get("content-security-policy")
    assert policy, f"no Content-Security-Policy on {path}"
    return policy


def test_html_pages_carry_a_policy_that_refuses_inline_code(page: Page, violations, crm):
    policy = visit(page, "/admin/login/")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"  # no nonce asked for on this page
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert violations == [], "\n".join(violations)

    # The policy is enforced: an inline script and an inline handler are refused, and say so.
    page.evaluate(
        """() => {
            const script = document.createElement('script');
            script.textContent = 'window.inlineRan = true';
            document.body.appendChild(script);
            const image = document.createElement('img');
            image.setAttribute('onerror', 'window.handlerRan = true');
            image.src = 'data:,not-an-image';
            document.body.appendChild(image);
        }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("() => [window.inlineRan, window.handlerRan]") == [None, None]
    assert any("script-src" in violation for violation in violations), violations


def test_admin_changelist_change_page_and_actions(page: Page, page_errors, violations, crm):
    log_in(page, CHANGELIST)
    visit(page, CHANGELIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(3)

    # The sidebar's calendar (the admin's DateTimeShortcuts) opens and writes a day.
    page.locator("#filter-created-before ~ .datetimeshortcuts a[id^=calendarlink]").click()
    calendar = page.locator(".calendarbox:visible")
    expect(calendar).to_have_count(1)
    calendar.locator(".calendar-shortcuts a", has_text="Today").click()
    expect(page.locator("#filter-created-before")).to_have_value(re.compile(r"^\d{4}-\d{2}-\d{2}$"))

    # Actions: selecting rows counts them, and the action leads to its confirmation page.
    page.locator("#result_list tbody input.action-select").first.check()
    expect(page.locator(".action-counter")).to_contain_text("1 of 3 selected")
    page.locator("select[name=action]").select_option(label="Archive the selected customers")
    with page.expect_navigation():
        page.locator("button[name=index]").click()
    expect(page.locator("#content")).to_contain_text("Yes, I")

    # The change page: metadata rows and the parent's autocomplete (select2).
    visit(page, CHANGELIST)
    with page.expect_navigation():
        page.get_by_role("link", name="Subsidiary Ltd", exact=True).click()
    expect(page.locator("#customer_form")).to_be_visible()
    page.locator(".field-parent .select2-selection").click()
    page.locator(".select2-search__field").fill("umbrella")
    expect(page.locator(".select2-results__option")).to_have_count(1)
    page.keyboard.press("Escape")

    # The environment switcher (a static script now, not an inline onchange) switches.
    with page.expect_navigation():
        page.locator("#environment-switcher-select").select_option("env_a_sandbox")
    expect(page.locator("#environment-switcher-select")).to_have_value("env_a_sandbox")

    # The change page's History, the add page.
    visit(page, f"{CHANGELIST}add/")
    expect(page.locator(".add-scope")).to_contain_text("env_a_sandbox")
    assert page_errors == []
    assert violations == [], "\n".join(violations)


def test_dashboard_and_import_pages(page: Page, page_errors, violations, crm):
    log_in(page, "/admin/")
    visit(page, "/admin/")
    expect(page.locator("#dashboard-customers")).to_contain_text("3")  # published customers

    visit(page, "/admin/customers/importjob/add/")
    expect(page.locator("#id_file")).to_be_visible()

    # A file's dry run, then its import as a running worker's heartbeat writes it:
    # import_progress.js polls and shows the progress (as test_browser_admin_import.py).
    rows = "".join(f"user_{n:03d},Customer {n}\n" for n in range(120))
    page.locator("#id_file").set_input_files(
        {
            "name": "customers.csv",
            "mimeType": "text/csv",
            "buffer": f"external_id,name\n{rows}".encode(),
        }
    )
    with page.expect_navigation():
        page.locator("#import-upload").click()
    job = ImportJob.objects.get(file_name="customers.csv")
    run_import_jobs(once=True)
    expect(page.locator("#import-ready")).to_contain_text("no problem in 120 rows")
    with page.expect_navigation():
        page.locator("#import-start").click()
    now = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(
        claim_token="running",
        claimed_until=now + timedelta(minutes=1),
        next_attempt_at=now + timedelta(minutes=1),
        attempt_count=1,
        stage_started_at=now - timedelta(seconds=10),
        progress_at=now,
        rows_done=40,
        phase="reading",
    )
    expect(page.locator("#import-rows-done")).to_have_text("40 of 120 rows")
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.QUEUED

    visit(page, "/admin/customers/importjob/")
    visit(page, "/admin/customers/webhookendpoint/add/")
    assert page_errors == []
    assert violations == [], "\n".join(violations)


def test_browsable_api(page: Page, page_errors, violations, crm):
    log_in(page, "/admin/")
    visit(page, "/v1/customers")
    expect(page.locator(".response-info")).to_contain_text('"total": 3')
    # DRF's scripts run: the Filters dialog opens, the format menu drops down.
    page.get_by_role("button", name="Filters").click()
    expect(page.locator("#filtersModal")).to_be_visible()
    page.locator("#filtersModal button.close").click()
    expect(page.locator("#filtersModal")).to_be_hidden()

    customer = json.loads(page.locator(".response-info pre").inner_text().split("\n\n", 1)[1])[
        "items"
    ][0]
    visit(page, f"/v1/customers/{customer['id']}")
    expect(page.locator(".response-info")).to_contain_text(customer["external_id"])
    visit(page, "/v1/events")
    visit(page, "/v1/webhook_endpoints")

    # Log out from the user menu (DRF's inline onclick is replaced by a plain button)...
    page.locator(".navbar .dropdown-toggle", has_text=USERNAME).click()
    with page.expect_navigation():
        page.locator("#logout-button").click()
    response = page.goto("/v1/customers")
    assert response is not None
    assert response.status == 401
    # ... and back in through DRF's login page, whose fixed style attributes are allowed.
    visit(page, "/api-auth/login/?next=/v1/customers")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.locator("#submit-id-submit").click()
    expect(page.locator(".response-info")).to_contain_text('"total": 3')
    assert page_errors == []
    assert violations == [], "\n".join(violations)


def test_swagger_ui_renders_its_operations(page: Page, page_errors, violations, crm):
    key = make_key(crm)
    visit(page, "/v1/docs/")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 10
    # "Try it out" on the list, with a key: the answer comes back.
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(key)
    dialog.locator("button.modal-btn.authorize").first.click()
    dialog.locator("button.btn-done").first.click()
    block = page.locator(".opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/v1/customers"]')
    )
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    status = block.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200")
    assert page_errors == []
    assert violations == [], "\n".join(violations)
