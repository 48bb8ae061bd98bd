"""Importing customers, and the dashboard, in a real browser (Chromium through Playwright, as
test_browser_admin.py): a file that is not a CSV is a form error; a file with bad rows
shows its problems with line and field; a good file's dry run, its preview, *Import*, the
progress the page polls (rows, rate, time left) and the outcome; the admin index's
dashboard, whose figures lead to the customer lists they count.

The worker is ``run_import_jobs`` run from the test between steps. The progress shown while
the import runs is a job row as a running worker's heartbeat writes it (the heartbeat
itself, from a real worker process mid-import, is tested in test_import_jobs.py on
PostgreSQL: on SQLite the import holds the write lock until it ends).

``CRM_SCREENSHOTS=1`` also saves docs/screenshots/import-dry-run.png, import-progress.png
and dashboard.png.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.events import Actor
from customers.import_jobs import run_import_jobs
from customers.models import Customer, ImportJob, ImportStatus
from customers.services import customer_archive, customer_create, staff_user_upsert
from customers.tests.factories import make_environment

USERNAME = "operator_import"
PASSWORD = "browser-import-test-password"
IMPORTS = "/admin/customers/importjob/"
HEADER = "external_id,name,email,metadata\n"
ROWS = 120
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("CRM_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(allow_async_unsafe, transactional_db):
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


def upload(page: Page, name: str, data: bytes) -> None:
    page.locator("#id_file").set_input_files({"name": name, "mimeType": "text/csv", "buffer": data})
    with page.expect_navigation():
        page.locator("#import-upload").click()


def good_file() -> bytes:
    return (
        HEADER
        + "".join(
            f'user_{n:04d},Customer {n},c{n}@example.com,"{{""plan"": ""p{n % 3}""}}"\n'
            for n in range(ROWS)
        )
    ).encode()


def test_upload_dry_run_import_with_progress(page: Page, page_errors: list[str], operator):
    log_in(page, IMPORTS)
    with page.expect_navigation():
        page.locator(".object-tools a.addlink").click()
    expect(page.locator("#import-environment")).to_contain_text("tenant_a / env_a")

    # Not a CSV: a form error, nothing kept.
    upload(page, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    expect(page.locator(".errorlist")).to_contain_text("This is not a CSV file")
    assert not ImportJob.objects.exists()

    # Bad rows: the dry run lists them with their line and field.
    upload(page, "bad.csv", (HEADER + "a,A,not-an-email,\nb,B,,{oops\n").encode())
    expect(page.locator("#import-state")).to_contain_text("waiting for a worker")
    run_import_jobs(once=True)
    expect(page.locator("#import-invalid")).to_contain_text("found 2 problems in 2 rows")
    expect(page.locator("#import-problems tbody tr")).to_have_count(2)
    expect(page.locator("#import-problems tbody tr").first).to_contain_text("2email")
    expect(page.locator("#import-start")).to_have_count(0)

    # A good file: dry run, preview, Import.
    page.goto(f"{IMPORTS}add/")
    upload(page, "customers.csv", good_file())
    job = ImportJob.objects.get(file_name="customers.csv")
    run_import_jobs(once=True)  # the page reloads by itself when the dry run is done
    expect(page.locator("#import-ready")).to_contain_text(f"no problem in {ROWS} rows")
    expect(page.locator("#import-preview tbody tr")).to_have_count(10)
    expect(page.locator("#import-preview tbody tr").first).to_contain_text("user_0000")
    assert not Customer.objects.exists()
    screenshot(page, "import-dry-run.png")
    with page.expect_navigation():
        page.locator("#import-start").click()
    expect(page.locator("#import-state")).to_contain_text("The import is waiting for a worker")

    # A worker mid-import, as its heartbeat writes it: the page's poll shows it.
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
    expect(page.locator("#import-rows-done")).to_have_text(f"40 of {ROWS} rows")
    expect(page.locator("#import-rate")).to_have_text("4 rows/s")
    expect(page.locator("#import-time-left")).to_have_text("20 s")
    expect(page.locator("#import-state")).to_have_text("The import is running.")
    assert page.locator("#import-bar").get_attribute("value") == "33"
    screenshot(page, "import-progress.png")

    # That worker's lease ends; the next worker imports it all and the page shows so.
    ImportJob.objects.filter(pk=job.pk).update(next_attempt_at=now - timedelta(seconds=1))
    run_import_jobs(once=True)
    expect(page.locator("#import-done")).to_contain_text(f"{ROWS} customers imported")
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.IMPORTED
    assert Customer.objects.filter(environment_id="env_a").count() == ROWS

    page.goto(IMPORTS)
    expect(page.locator("#result_list")).to_contain_text("customers.csv")
    expect(page.locator("#result_list")).to_contain_text("2 problems found")
    assert page_errors == []


def test_the_dashboard_figures_lead_to_the_lists_they_count(
    page: Page, page_errors: list[str], operator
):
    scope = operator.scope
    actor = Actor.user("alice")
    for number in range(4):
        customer_create(
            scope=scope, data={"external_id": f"e{number}", "name": f"Dash {number}"}, actor=actor
        )
    archived = customer_create(
        scope=scope, data={"external_id": "gone", "name": "Gone"}, actor=actor
    )
    customer_archive(scope=scope, customer_id=archived.pk, actor=Actor.user("bob"))
    old = customer_create(scope=scope, data={"external_id": "old", "name": "Old"}, actor=actor)
    Customer.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=12))

    log_in(page, "/admin/")
    board = page.locator("#dashboard")
    expect(board).to_contain_text("tenant_a / env_a")
    expect(page.locator("#dashboard-changes")).to_contain_text("Archived")
    expect(page.locator("#dashboard-changes")).to_contain_text("User bob")
    screenshot(page, "dashboard.png")
    for label, rows in (
        ("Created in the last 7 days", 5),
        ("Created in the last 30 days", 6),
        ("Archived in the last 7 days", 1),
        ("All customers", 6),
    ):
        page.goto("/admin/")
        row = page.locator("#dashboard-customers tr", has_text=label)
        expect(row.locator(".dashboard-number")).to_have_text(str(rows))
        with page.expect_navigation():
            row.locator("th a").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(rows)
    assert page_errors == []
