"""Security of the admin pages: another tenant's objects are out of reach through every URL,
hostile text is shown escaped on every page that shows it, every form needs its CSRF token,
and every page needs a login.

Each URL is one row of a table. An isolation row is first shown working for the operator of
the tenant that owns the object (inside a savepoint that is rolled back), then sent by an
operator of another tenant: a 404, a 403 or a redirect away, never the object's data, and
nothing changed in the database. The API has its own module, test_security.py.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.utils import timezone

from customers.events import Actor
from customers.import_jobs import import_job_create, run_import_jobs
from customers.models import (
    Customer,
    CustomerEvent,
    ImportJob,
    ImportStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from customers.services import customer_archive, customer_create, customer_update, staff_user_upsert
from customers.tests.test_admin import form_data as customer_form
from customers.tests.test_security import database_state, filled

pytestmark = pytest.mark.django_db

ADMIN = "/admin/customers"
ACTOR = Actor.command("security tests")


def admin_state() -> dict[str, list[tuple]]:
    """The API's state, and what only the admin writes."""
    state = database_state()
    for model in (ImportJob, LogEntry, get_user_model()):
        state[model.__name__] = list(model.objects.order_by("pk").values_list())
    return state


def operator_client(username: str, tenant_id: str, **client_options) -> Client:
    user = staff_user_upsert(username=username, password="pw-for-tests", tenant_ids=[tenant_id])
    client = Client(**client_options)
    client.force_login(user)
    client.user = user
    return client


def csv_file(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def csv_text(*rows: tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([("external_id", "name"), *rows])
    return out.getvalue()


@dataclass
class Tenant:
    """One tenant's objects, made through the services (events, deliveries, a dry run)."""

    label: str
    scope: object
    customer: Customer
    child: Customer
    archived: Customer
    endpoint: WebhookEndpoint
    delivery: WebhookDelivery
    job: ImportJob
    word: str
    values: dict = field(default_factory=dict)

    @property
    def shown(self) -> tuple[str, ...]:
        """What only a page showing this tenant's objects has (the word alone may be the
        echo of a search)."""
        word = self.word
        return (
            f"Victim {word}",
            f"Child {word}",
            f"Archived {word}",
            f"{word}-hook",
            f"{word}.csv",
        )

    def fill(self, template):
        return filled(template, self.values)


def build_tenant(label: str, scope, user) -> Tenant:
    word = f"zq{label}word"
    endpoint = WebhookEndpoint.objects.create(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        url=f"http://127.0.0.1:9/{word}-hook",
        enabled_events=["*"],
        secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
    )
    customer = customer_create(
        scope=scope, data={"external_id": f"{label}_1", "name": f"Victim {word}"}, actor=ACTOR
    )
    child = customer_create(
        scope=scope,
        data={
            "external_id": f"{label}_2",
            "name": f"Child {word}",
            "parent_customer_id": customer.pk,
        },
        actor=ACTOR,
    )
    archived = customer_create(
        scope=scope, data={"external_id": f"{label}_3", "name": f"Archived {word}"}, actor=ACTOR
    )
    customer_archive(scope=scope, customer_id=archived.pk, actor=ACTOR)
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id").first()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDeliveryStatus.FAILED, finished_at=timezone.now()
    )
    WebhookAttempt.objects.create(
        delivery=delivery,
        attempted_at=timezone.now() - timedelta(seconds=5),
        status_code=500,
        duration_ms=3,
        succeeded=False,
        response_excerpt="nope",
    )
    job = import_job_create(
        scope=scope,
        user=user,
        uploaded=csv_file(f"{word}.csv", f"external_id,name\n{label}_new,Imported {word}\n"),
    )
    tenant = Tenant(
        label=label,
        scope=scope,
        customer=customer,
        child=child,
        archived=archived,
        endpoint=endpoint,
        delivery=delivery,
        job=job,
        word=word,
    )
    tenant.values = {
        "customer": quote(customer.pk),
        "customer_id": customer.pk,
        "archived_id": archived.pk,
        "endpoint": quote(endpoint.pk),
        "endpoint_id": endpoint.pk,
        "delivery_id": delivery.pk,
        "job": job.pk,
        "word": word,
        "environment_id": scope.environment_id,
    }
    return tenant


@pytest.fixture
def tenants(scope_a, scope_a_sandbox, scope_b) -> dict:
    mine = operator_client("operator_a", "tenant_a")
    theirs = operator_client("operator_b", "tenant_b")
    built = {
        "mine": build_tenant("mine", scope_a.scope, mine.user),
        "theirs": build_tenant("theirs", scope_b.scope, theirs.user),
    }
    run_import_jobs(once=True)  # both dry runs: the jobs may be imported
    for tenant in built.values():
        tenant.job.refresh_from_db()
        assert tenant.job.status == ImportStatus.CHECKED
    return {"mine_client": mine, "theirs_client": theirs, **built}


def endpoint_form(**changes) -> dict:
    return {
        "url": "http://127.0.0.1:9/taken-over",
        "enabled_events": ["*"],
        "description": "taken over",
        "enabled": "on",
        **changes,
    }


# --- another tenant's objects through every URL ---------------------------------------------


@dataclass(frozen=True)
class Page:
    """A request of the admin naming a tenant's objects (its values in braces)."""

    method: str
    path: str
    data: dict | Callable | None = None
    writes: bool = False
    shows: bool = True  # the owner's page shows the object (a JSON answer need not)
    # What the owner gets; the other tenant gets one of `refused` (a 200 only for lists,
    # which then must not show the object).
    ok: tuple[int, ...] = (200,)
    refused: tuple[int, ...] = (302, 403, 404)

    def __call__(self, client: Client, tenant: Tenant):
        data = self.data(tenant) if callable(self.data) else tenant.fill(self.data or {})
        return getattr(client, self.method)(tenant.fill(self.path), data)


def write(path: str, data: dict | Callable | None = None) -> Page:
    """A POST that changes something and redirects, for its owner."""
    return Page("post", ADMIN + path, data, writes=True, ok=(302,))


def action(name: str, *ids: str, confirmed: bool = True) -> dict:
    data = {"action": name, "index": "0", "_selected_action": list(ids)}
    if confirmed:
        data["post"] = "yes"
    return data


AUTOCOMPLETE = "/admin/autocomplete/"
PARENT_SEARCH = {"app_label": "customers", "model_name": "customer", "field_name": "parent"}
C = ADMIN + "/customer/"
W = ADMIN + "/webhookendpoint/"
PAGES = {
    "customer change page": Page("get", C + "{customer}/change/"),
    "customer change form": write(
        "/customer/{customer}/change/", lambda t: customer_form(t.customer, name="Taken over")
    ),
    "customer history": Page("get", C + "{customer}/history/"),
    "archive confirmation": Page("get", C + "{customer_id}/archive/"),
    "archive": write("/customer/{customer_id}/archive/"),
    "restore": write("/customer/{archived_id}/restore/"),
    "erase confirmation": Page("get", C + "{customer_id}/erase/"),
    "erase": write("/customer/{customer_id}/erase/"),
    "archive action, asked": Page(
        "post", C, action("archive_selected", "{customer_id}", confirmed=False)
    ),
    "archive action": write("/customer/", action("archive_selected", "{customer_id}")),
    "restore action": write("/customer/", action("restore_selected", "{archived_id}")),
    "erase action": write("/customer/", action("erase_selected", "{customer_id}")),
    "customer list, searched": Page(
        "get", C, {"environment": "all", "q": "{word}"}, refused=(200,)
    ),
    "customer list, their environment": Page(
        "get", C, {"environment": "{environment_id}", "q": "{word}"}, ok=(302,)
    ),
    "customer list, their ids": Page(
        "get", C, {"environment": "all", "customer_ids": "{customer_id}"}, refused=(200,)
    ),
    "CSV export, their environment": Page(
        "get", C + "export.csv", {"environment": "{environment_id}"}, ok=(302,)
    ),
    "CSV export": Page(
        "get", C + "export.csv", {"environment": "all", "q": "{word}"}, refused=(200,)
    ),
    "parent autocomplete": Page(
        "get", AUTOCOMPLETE, {**PARENT_SEARCH, "term": "{word}"}, refused=(200,)
    ),
    "parent autocomplete, their environment": Page(
        "get",
        AUTOCOMPLETE,
        {**PARENT_SEARCH, "term": "{word}", "environment": "{environment_id}"},
        refused=(200,),
    ),
    "dashboard": Page("get", "/admin/", refused=(200,)),
    "webhook endpoint list": Page("get", W, {"environment": "{environment_id}"}, refused=(200,)),
    "webhook endpoint page": Page("get", W + "{endpoint}/change/"),
    "webhook endpoint history": Page("get", W + "{endpoint}/history/"),
    "webhook endpoint form": write("/webhookendpoint/{endpoint}/change/", endpoint_form()),
    "webhook endpoint delete page": Page("get", W + "{endpoint}/delete/"),
    "webhook endpoint delete": write("/webhookendpoint/{endpoint}/delete/", {"post": "yes"}),
    "webhook endpoint delete action": write(
        "/webhookendpoint/", action("delete_selected", "{endpoint_id}")
    ),
    "rotate secret confirmation": Page("get", W + "{endpoint}/rotate_secret/"),
    "rotate secret": write("/webhookendpoint/{endpoint}/rotate_secret/"),
    "resend a delivery": write("/webhookendpoint/{endpoint}/deliveries/{delivery_id}/resend/"),
    "import list": Page("get", ADMIN + "/importjob/", refused=(200,)),
    "import job page": Page("get", ADMIN + "/importjob/{job}/change/"),
    "import job history": Page("get", ADMIN + "/importjob/{job}/history/", shows=False),
    "import progress": Page("get", ADMIN + "/importjob/{job}/progress/", shows=False),
    "import start": write("/importjob/{job}/import/"),
}


def as_owner(request: Callable[[], object]):
    with transaction.atomic():
        before = admin_state()
        response = request()
        changed = admin_state() != before
        transaction.set_rollback(True)
    return response, changed


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def followed(client: Client, response) -> str:
    """The response's text and, for a redirect, the page it leads to."""
    text = body_of(response)
    if response.status_code == 302:
        text += client.get(response["Location"]).content.decode()
    return text


@pytest.mark.parametrize("name", PAGES)
def test_another_tenants_objects_are_out_of_reach(tenants, name):
    page = PAGES[name]
    theirs = tenants["theirs"]
    response, changed = as_owner(lambda: page(tenants["theirs_client"], theirs))
    assert response.status_code in page.ok, body_of(response)[:2000]
    assert changed is page.writes
    if page.shows and not page.writes and response.status_code == 200:
        shown = body_of(response)
        assert any(text in shown for text in theirs.shown)  # the owner sees the object

    before = admin_state()
    client = tenants["mine_client"]
    response = page(client, theirs)
    assert response.status_code in page.refused, body_of(response)[:2000]
    text = followed(client, response)
    for shown in theirs.shown:
        assert shown not in text
    assert theirs.endpoint.secret not in text
    assert admin_state() == before


def test_the_refused_pages_say_so(tenants):
    theirs, client = tenants["theirs"], tenants["mine_client"]
    history = client.get(f"{ADMIN}/customer/{quote(theirs.customer.pk)}/history/", follow=True)
    assert "That customer is not one of your tenants&#x27;." in history.content.decode()
    switched = client.get(f"{ADMIN}/customer/", {"environment": "env_b"}, follow=True)
    assert "That environment is not one of yours." in switched.content.decode()
    asked = client.post(
        f"{ADMIN}/customer/",
        action("archive_selected", theirs.customer.pk, confirmed=False),
        follow=True,
    )
    assert "None of the selected customers can be archived." in asked.content.decode()


def test_a_parent_of_another_tenant_is_an_unknown_choice(tenants):
    """Not "must be of the same tenant and environment" (which would say it exists), and
    its name never shown as the chosen parent of the refused form."""
    mine, theirs, client = tenants["mine"], tenants["theirs"], tenants["mine_client"]
    url = f"{ADMIN}/customer/{quote(mine.customer.pk)}/change/"
    refused = client.post(url, customer_form(mine.customer, parent=theirs.customer.pk))
    unknown = client.post(
        url, customer_form(mine.customer, parent="cust_01AAAAAAAAAAAAAAAAAAAAAAAA")
    )
    for response in (refused, unknown):
        assert response.status_code == 200
        assert "That choice is not one of the available choices." in response.content.decode()
    for shown in theirs.shown:
        assert shown not in refused.content.decode()
    mine.customer.refresh_from_db()
    assert mine.customer.parent_id is None


def test_the_change_form_cannot_move_a_customer_to_another_tenant(tenants):
    mine, client = tenants["mine"], tenants["mine_client"]
    url = f"{ADMIN}/customer/{quote(mine.customer.pk)}/change/"
    form = customer_form(mine.customer, name="Moved?", tenant_id="tenant_b")
    form["environment_id"] = "env_b"
    assert client.post(url, form).status_code == 302
    mine.customer.refresh_from_db()
    assert mine.customer.name == "Moved?"
    assert (mine.customer.tenant_id, mine.customer.environment_id) == ("tenant_a", "env_a")


def test_an_import_naming_another_tenants_customers_touches_none_of_them(tenants):
    """An upload whose rows name another tenant's customer as a parent, or take its id, is
    refused by its dry run (a parent of another tenant in the words of an unknown one), and
    nothing of theirs changes."""
    mine, theirs, client = tenants["mine"], tenants["theirs"], tenants["mine_client"]
    before = [
        Customer.objects.filter(tenant_id="tenant_b").order_by("pk").values_list(),
        CustomerEvent.objects.filter(tenant_id="tenant_b").order_by("pk").values_list(),
    ]
    before = [list(rows) for rows in before]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(
        [
            ("id", "external_id", "name", "parent_customer_id"),
            ("", "child_of_theirs", "Child", theirs.customer.pk),
            ("", "child_of_nobody", "Child", "cust_01AAAAAAAAAAAAAAAAAAAAAAAA"),
            ("", "child_of_mine", "Child", mine.customer.pk),
            (theirs.child.pk, "their_id", "Taken over", ""),
        ]
    )
    client.post(f"{ADMIN}/importjob/add/", {"file": csv_file("sneaky.csv", out.getvalue())})
    job = ImportJob.objects.latest("id")
    run_import_jobs(once=True)
    job.refresh_from_db()
    assert job.status == ImportStatus.INVALID
    problems = {problem["line"]: problem for problem in job.problems}
    assert set(problems) == {2, 3, 5}
    assert problems[2]["message"] == problems[3]["message"].replace(
        "cust_01AAAAAAAAAAAAAAAAAAAAAAAA", theirs.customer.pk
    )
    assert problems[5]["field"] == "id"
    assert client.post(f"{ADMIN}/importjob/{job.pk}/import/").status_code == 302
    run_import_jobs(once=True)
    after = [
        list(Customer.objects.filter(tenant_id="tenant_b").order_by("pk").values_list()),
        list(CustomerEvent.objects.filter(tenant_id="tenant_b").order_by("pk").values_list()),
    ]
    assert after == before
    assert not Customer.objects.filter(external_id__startswith="child_of").exists()


# --- hostile text, shown escaped everywhere -----------------------------------------------


def hostile(label: str) -> str:
    """Text that would run a script if written into a page (or an attribute) unescaped."""
    return f"\"'><svg onload=alert({label})>"


def hostile_without_spaces(label: str) -> str:
    return f"\"'><svg/onload=alert({label})>"


RAW = ("<svg onload=", "<svg/onload=")


def escaped_core(label: str) -> str:
    return escape(f"<svg onload=alert({label})>")


@pytest.fixture
def hostile_world(scope_a, settings):
    """In the operator's current environment: hostile names, external ids, address,
    metadata, a webhook URL and description, a receiver's answer, imports' file names,
    rows and problems."""
    client = operator_client("operator", "tenant_a")
    scope = scope_a.scope
    endpoint = WebhookEndpoint.objects.create(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        url="http://127.0.0.1:9/" + hostile_without_spaces("url"),
        description=hostile("description"),
        enabled_events=["*"],
        secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
    )
    parent = customer_create(
        scope=scope, data={"external_id": "p1", "name": hostile("parent")}, actor=ACTOR
    )
    child = customer_create(
        scope=scope,
        data={
            "external_id": hostile("external"),
            "name": hostile("before"),
            "parent_customer_id": parent.pk,
            "address_city": hostile("city"),
            "metadata": {hostile("key"): hostile("value")},
        },
        actor=ACTOR,
    )
    child = customer_update(
        scope=scope, customer_id=child.pk, data={"name": hostile("after")}, actor=ACTOR
    )
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id").first()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDeliveryStatus.FAILED, finished_at=timezone.now()
    )
    WebhookAttempt.objects.create(
        delivery=delivery,
        attempted_at=timezone.now(),
        status_code=500,
        duration_ms=3,
        succeeded=False,
        response_excerpt=hostile("answer"),
    )
    uploads = {
        "good": csv_file(hostile("goodfile") + ".csv", csv_text(("row1", hostile("row")))),
        "bad": csv_file(
            hostile("badfile") + ".csv", csv_text((hostile("dupe"), "A"), (hostile("dupe"), "B"))
        ),
    }
    jobs = {}
    for kind, upload in uploads.items():
        response = client.post(f"{ADMIN}/importjob/add/", {"file": upload}, follow=True)
        assert response.status_code == 200
        assert_escaped(response.content.decode(), "goodfile" if kind == "good" else "badfile")
        jobs[kind] = ImportJob.objects.latest("id")
    run_import_jobs(once=True)
    values = {
        "child": quote(child.pk),
        "child_id": child.pk,
        "parent": quote(parent.pk),
        "endpoint": quote(endpoint.pk),
        **{kind: job.pk for kind, job in jobs.items()},
    }
    return {
        "client": client,
        "parent": parent,
        "child": child,
        "endpoint": endpoint,
        "values": values,
        **jobs,
    }


def assert_escaped(html: str, *labels: str) -> None:
    for raw in RAW:
        assert raw not in html
    for label in labels:
        assert escaped_core(label) in html or escape(f"<svg/onload=alert({label})>") in html, label


@dataclass(frozen=True)
class Shown:
    """A page (the hostile world's values in braces) and the hostile texts it shows."""

    path: str
    labels: tuple[str, ...]
    data: Callable[[dict], dict] | None = None  # a POST's
    headers: dict = field(default_factory=dict)


SHOWN = {
    "customer list": Shown(C, ("parent", "after", "external")),
    "customer list, every environment": Shown(C + "?environment=all", ("parent", "after")),
    "customer change page": Shown(
        C + "{child}/change/", ("after", "external", "city", "key", "value", "parent")
    ),
    "parent's change page (children)": Shown(C + "{parent}/change/", ("parent", "after")),
    "refused change form": Shown(
        C + "{child}/change/",
        ("after", "external", "city", "key", "value", "parent"),
        data=lambda w: {
            **customer_form(w["child"], email="not an email", parent=w["parent"].pk),
            "metadata_key": [hostile("key")],
            "metadata_value": [hostile("value")],
        },
    ),
    "history": Shown(C + "{child}/history/", ("before", "after")),
    "archive confirmation": Shown(C + "{child_id}/archive/", ("after", "external")),
    "erase confirmation": Shown(C + "{child_id}/erase/", ("after", "external")),
    "archive action's confirmation": Shown(
        C,
        ("after", "parent"),
        data=lambda w: action("archive_selected", w["child"].pk, w["parent"].pk, confirmed=False),
    ),
    "dashboard": Shown("/admin/", ("after", "url", "goodfile", "badfile")),
    "webhook endpoint list": Shown(W, ("url",)),
    "webhook endpoint page and deliveries": Shown(
        W + "{endpoint}/change/", ("url", "description", "answer", "parent")
    ),
    "rotate secret confirmation": Shown(W + "{endpoint}/rotate_secret/", ("url",)),
    "webhook endpoint delete page": Shown(W + "{endpoint}/delete/", ()),
    "import list": Shown(ADMIN + "/importjob/", ("goodfile", "badfile")),
    "import preview": Shown(ADMIN + "/importjob/{good}/change/", ("goodfile", "row")),
    "import problems": Shown(ADMIN + "/importjob/{bad}/change/", ("badfile", "dupe")),
    "browsable API": Shown(
        "/v1/customers", ("after", "external", "key"), headers={"HTTP_ACCEPT": "text/html"}
    ),
}


@pytest.mark.parametrize("name", SHOWN)
def test_hostile_text_is_shown_escaped(hostile_world, name):
    shown = SHOWN[name]
    client = hostile_world["client"]
    url = filled(shown.path, hostile_world["values"])
    if shown.data:
        response = client.post(url, shown.data(hostile_world), **shown.headers)
    else:
        response = client.get(url, **shown.headers)
    assert response.status_code == 200, response.content.decode()[:2000]
    assert response["Content-Type"].startswith("text/html")
    assert_escaped(response.content.decode(), *shown.labels)


def test_messages_naming_hostile_text_are_escaped(hostile_world, scope_a):
    client = hostile_world["client"]
    refused = customer_create(
        scope=scope_a.scope, data={"external_id": "taken", "name": hostile("message")}, actor=ACTOR
    )
    customer_archive(scope=scope_a.scope, customer_id=refused.pk, actor=ACTOR)
    customer_create(scope=scope_a.scope, data={"external_id": "taken", "name": "Live"}, actor=ACTOR)
    response = client.post(
        f"{ADMIN}/customer/", action("restore_selected", refused.pk), follow=True
    )
    html = response.content.decode()
    assert "Not restored" in html
    assert_escaped(html, "message")


def test_the_csv_export_neutralises_hostile_text_for_spreadsheets(hostile_world):
    """The admin's export is text/csv (never HTML); a cell a spreadsheet would read as a
    formula is neutralised."""
    client = hostile_world["client"]
    customer_create(
        scope=hostile_world["parent"].scope,
        data={"external_id": "formula", "name": '=HYPERLINK("http://evil.example")'},
        actor=ACTOR,
    )
    response = client.get(f"{ADMIN}/customer/export.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body_of(response))))
    names = {row["name"] for row in rows}
    assert hostile("after") in names  # as text, which no spreadsheet runs
    assert '=HYPERLINK("http://evil.example")' not in names


# --- CSRF on every form -----------------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    path: str  # the tenant's values in braces
    data: dict | Callable[[Tenant], dict] = field(default_factory=dict)
    json: bool = False  # a JSON body (the browsable API's session writes)
    anonymous: bool = False  # sent logged out (the login forms)


NEW_PASSWORD = "A-new-long-pass-phrase-1"
LOGIN = {"username": "operator_a", "password": "pw-for-tests"}
CSRF_FORMS = {
    "login": Form("/admin/login/", LOGIN, anonymous=True),
    "browsable API login": Form("/api-auth/login/", LOGIN, anonymous=True),
    "logout": Form("/admin/logout/"),
    "password change": Form(
        "/admin/password_change/",
        {
            "old_password": "pw-for-tests",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    ),
    "environment switch": Form("/environment/switch", {"environment_id": "env_a_sandbox"}),
    "customer add": Form(
        C + "add/", lambda t: customer_form(t.customer, external_id="brand_new", parent="")
    ),
    "customer change": Form(
        C + "{customer}/change/", lambda t: customer_form(t.customer, name="Changed")
    ),
    "archive": Form(C + "{customer_id}/archive/"),
    "restore": Form(C + "{archived_id}/restore/"),
    "erase": Form(C + "{customer_id}/erase/"),
    "archive action": Form(C, action("archive_selected", "{customer_id}")),
    "restore action": Form(C, action("restore_selected", "{archived_id}")),
    "erase action": Form(C, action("erase_selected", "{customer_id}")),
    "webhook endpoint add": Form(W + "add/", endpoint_form()),
    "webhook endpoint change": Form(W + "{endpoint}/change/", endpoint_form()),
    "webhook endpoint delete": Form(W + "{endpoint}/delete/", {"post": "yes"}),
    "webhook endpoint delete action": Form(W, action("delete_selected", "{endpoint_id}")),
    "rotate secret": Form(W + "{endpoint}/rotate_secret/"),
    "resend": Form(W + "{endpoint}/deliveries/{delivery_id}/resend/"),
    "import upload": Form(
        ADMIN + "/importjob/add/",
        lambda t: {"file": csv_file("new.csv", csv_text(("new_1", "New")))},
    ),
    "import start": Form(ADMIN + "/importjob/{job}/import/"),
    "API create (session)": Form("/v1/customers", {"external_id": "new", "name": "N"}, json=True),
    "API webhook endpoint create (session)": Form(
        "/v1/webhook_endpoints",
        {"url": "http://127.0.0.1:9/new", "enabled_events": ["*"]},
        json=True,
    ),
}


@pytest.mark.parametrize("name", CSRF_FORMS)
def test_every_form_needs_its_csrf_token(tenants, name):
    form = CSRF_FORMS[name]
    mine = tenants["mine"]
    client = Client(enforce_csrf_checks=True)  # as browsers are held to it
    if not form.anonymous:
        client.force_login(tenants["mine_client"].user)
    url = mine.fill(form.path)

    def post(**extra):
        data = form.data(mine) if callable(form.data) else mine.fill(form.data)
        if form.json:
            return client.post(url, data, content_type="application/json", **extra)
        return client.post(url, {**data, **extra})

    before = admin_state()
    session_before = dict(client.session.items())
    refused = post()
    assert refused.status_code == 403, body_of(refused)[:2000]
    assert "CSRF" in body_of(refused)
    assert admin_state() == before
    assert dict(client.session.items()) == session_before

    # The very same form with the token the page gave does what it says.
    client.get("/admin/login/" if form.anonymous else "/admin/")
    token = client.cookies["csrftoken"].value
    accepted = post(HTTP_X_CSRFTOKEN=token) if form.json else post(csrfmiddlewaretoken=token)
    assert accepted.status_code in (200, 201, 302), body_of(accepted)[:2000]
    assert "CSRF" not in body_of(accepted)
    changed = admin_state() != before or dict(client.session.items()) != session_before
    assert changed


# --- a login for every page --------------------------------------------------------------------


# Every page of the isolation table, and those that name no object.
LOGIN_PAGES = {
    **{name: page for name, page in PAGES.items() if page.method == "get"},
    "customer list": Page("get", C),
    "customer add": Page("get", C + "add/"),
    "webhook endpoint add": Page("get", W + "add/"),
    "import upload": Page("get", ADMIN + "/importjob/add/"),
}


@pytest.mark.parametrize("name", LOGIN_PAGES)
def test_every_page_needs_a_login(tenants, name):
    page, mine = LOGIN_PAGES[name], tenants["mine"]
    assert page(tenants["mine_client"], mine).status_code in page.ok  # the page is there
    for client in (Client(), non_staff_client()):
        response = page(client, mine)
        assert response.status_code == 302, name
        assert response["Location"].startswith("/admin/login/")
        assert not any(text in body_of(response) for text in mine.shown)


def non_staff_client() -> Client:
    user = get_user_model().objects.create_user("not_staff", password="pw")
    client = Client()
    client.force_login(user)
    return client


def test_a_deactivated_operator_is_logged_out_at_once(tenants):
    client = tenants["mine_client"]
    assert client.get(f"{ADMIN}/customer/").status_code == 200
    get_user_model().objects.filter(pk=client.user.pk).update(is_active=False)
    response = client.get(f"{ADMIN}/customer/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert client.get("/v1/customers").status_code in (401, 403)
