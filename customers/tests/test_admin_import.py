"""Import from the admin pages: upload into the current environment, form errors, the job's
page through its dry run and import, the progress JSON, and the scope (another tenant's
imports are unlisted and 404)."""

import re
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from customers.access import SESSION_ENVIRONMENT_KEY
from customers.import_jobs import import_job_create, run_import_jobs
from customers.models import Customer, ImportJob, ImportStatus
from customers.services import staff_user_upsert

pytestmark = pytest.mark.django_db

LIST = "/admin/customers/importjob/"
ADD = f"{LIST}add/"
HEADER = "external_id,name,email\n"


def page_url(job) -> str:
    return f"{LIST}{job.pk}/change/"


def csv_upload(text: str | bytes, name: str = "people.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text)


def rows(count: int) -> str:
    return HEADER + "".join(f"ext_{n},Name {n},n{n}@example.com\n" for n in range(count))


def text_of(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


@pytest.fixture
def operator(scope_a, scope_a_sandbox, scope_b):
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def other_operator(scope_b):
    user = staff_user_upsert(username="other", password="pw-for-tests", tenant_ids=["tenant_b"])
    client = Client()
    client.force_login(user)
    return client


def switch(client, environment_id: str) -> None:
    session = client.session
    session[SESSION_ENVIRONMENT_KEY] = environment_id
    session.save()


def test_the_upload_page_names_the_current_environment(operator):
    switch(operator, "env_a_sandbox")
    response = operator.get(ADD)
    assert response.status_code == 200
    assert "Into tenant_a / env_a_sandbox ( env_a_sandbox ), your current environment" in text_of(
        response
    )


def test_an_upload_becomes_a_job_in_the_current_environment(operator):
    switch(operator, "env_a_sandbox")
    response = operator.post(ADD, {"file": csv_upload(rows(3))})
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page_url(job)
    assert (job.tenant_id, job.environment_id, job.created_by_name, job.file_name) == (
        "tenant_a",
        "env_a_sandbox",
        "operator",
        "people.csv",
    )
    page = text_of(operator.get(page_url(job)))
    assert "The dry run is waiting for a worker (manage.py run_import_jobs)." in page
    assert "import_progress.js" in operator.get(page_url(job)).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("external_id,name\nA,Caf\xe9\n".encode("latin-1"), "The file is not UTF-8 text: line 2"),
        (b"PK\x03\x04\x14\x00\x06\x00", "This is not a CSV file: it holds binary data"),
        (b"first;second\n1;2\n", "This is not a customer CSV: line 1: unknown column"),
    ],
)
def test_a_file_that_is_not_a_utf8_customer_csv_is_a_form_error(operator, data, message):
    response = operator.post(ADD, {"file": csv_upload(data)})
    assert response.status_code == 200
    assert message in text_of(response)
    assert not ImportJob.objects.exists()


@override_settings(IMPORT_MAX_UPLOAD_BYTES=50)
def test_a_file_over_the_limit_is_a_form_error(operator):
    response = operator.post(ADD, {"file": csv_upload(rows(10))})
    assert "the largest accepted is 50 bytes (IMPORT_MAX_UPLOAD_BYTES)" in text_of(response)
    assert not ImportJob.objects.exists()


def test_dry_run_then_import_through_the_pages(operator):
    operator.post(ADD, {"file": csv_upload(rows(12))})
    job = ImportJob.objects.get()
    run_import_jobs(once=True)
    response = operator.get(page_url(job))
    page = text_of(response)
    assert "The dry run found no problem in 12 rows. Nothing has been written yet." in page
    assert "The first rows as they will be stored" in page
    assert "ext_0 Name 0 n0@example.com" in page
    assert 'id="import-start"' in response.content.decode()
    assert "import_progress.js" not in response.content.decode()  # nothing to poll

    response = operator.post(f"{LIST}{job.pk}/import/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED
    assert "The import is waiting for a worker" in text_of(operator.get(page_url(job)))
    assert operator.get(f"{LIST}{job.pk}/progress/").json()["status"] == "queued"

    run_import_jobs(once=True)
    page = text_of(operator.get(page_url(job)))
    assert "12 customers imported" in page
    assert "Import asked by operator" in page
    assert Customer.objects.filter(environment_id="env_a").count() == 12
    listing = text_of(operator.get(LIST))
    assert "people.csv env_a operator Imported 12 12" in listing


def test_problems_are_listed_with_line_and_field_and_no_import_is_offered(operator):
    operator.post(ADD, {"file": csv_upload(HEADER + "a,A,bad\nb,B,\nb,C,\n")})
    run_import_jobs(once=True)
    job = ImportJob.objects.get()
    response = operator.get(page_url(job))
    page = text_of(response)
    assert "The dry run found 2 problems in 3 rows: the file cannot be imported." in page
    assert "2 email " in page
    assert "4 external_id external_id 'b' is also on line 3" in page
    assert 'id="import-start"' not in response.content.decode()
    assert operator.post(f"{LIST}{job.pk}/import/").status_code == 302
    job.refresh_from_db()
    assert job.status == ImportStatus.INVALID


def test_the_progress_json_has_rows_rate_and_time_left(operator):
    operator.post(ADD, {"file": csv_upload(rows(2))})
    job = ImportJob.objects.get()
    progress = operator.get(f"{LIST}{job.pk}/progress/").json()
    assert progress["status"] == "checking"
    assert progress["waiting"]
    assert {"rows_text", "rate_text", "time_left_text", "state_text"} <= set(progress)


def test_another_tenants_import_is_unlisted_and_unreachable(operator, other_operator, scope_b):
    mine = import_job_create(
        scope=scope_b.scope, user=operator.user, uploaded=csv_upload(rows(1), "theirs.csv")
    )
    assert "theirs.csv" not in text_of(operator.get(LIST))
    for url in (page_url(mine), f"{LIST}{mine.pk}/progress/"):
        assert operator.get(url).status_code == 404
    assert operator.post(f"{LIST}{mine.pk}/import/").status_code == 404
    # The positive case: its own tenant's operator sees it.
    assert other_operator.get(page_url(mine)).status_code == 200
    assert "theirs.csv" in text_of(other_operator.get(LIST))


def test_staff_who_may_not_add_customers_cannot_upload(operator):
    operator.user.groups.clear()
    response = operator.post(ADD, {"file": csv_upload(rows(1))})
    assert response.status_code in (302, 403)
    assert not ImportJob.objects.exists()
