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
    ImportJob,
    ImportStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from customers.services import customer_archive, customer_create, customer_update, staff_user_upsert
from customers.tests.test_security import database_state

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
        if isinstance(template, str):
            return template.format(**self.values)
        if isinstance(template, list):
            return [self.fill(item) for item in template]
        if isinstance(template, dict):
            return {key: self.fill(value) for key, value in template.items()}
        return template


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


def customer_form(customer: Customer, **changes) -> dict:
    data = {
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email or "",
        "status": customer.status,
        "parent": customer.parent_id or "",
        "metadata_key": [""],
        "metadata_value": [""],
    }
    for name in (
        "address_line1",
        "address_line2",
        "address_city",
        "address_state",
        "address_postal_code",
        "address_country",
    ):
        data[name] = getattr(customer, name)
    data.update(changes)
    return data


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


def action(name: str, *ids: str, confirmed: bool = True) -> dict:
    data = {"action": name, "index": "0", "_selected_action": list(ids)}
    if confirmed:
        data["post"] = "yes"
    return data


AUTOCOMPLETE = "/admin/autocomplete/"
PAGES = {
    "customer change page": Page("get", ADMIN + "/customer/{customer}/change/"),
    "customer change form": Page(
        "post",
        ADMIN + "/customer/{customer}/change/",
        lambda t: customer_form(t.customer, name="Taken over"),
        writes=True,
        ok=(302,),
    ),
    "customer history": Page("get", ADMIN + "/customer/{customer}/history/"),
    "archive confirmation": Page("get", ADMIN + "/customer/{customer_id}/archive/"),
    "archive": Page("post", ADMIN + "/customer/{customer_id}/archive/", writes=True, ok=(302,)),
    "restore": Page("post", ADMIN + "/customer/{archived_id}/restore/", writes=True, ok=(302,)),
    "erase confirmation": Page("get", ADMIN + "/customer/{customer_id}/erase/"),
    "erase": Page("post", ADMIN + "/customer/{customer_id}/erase/", writes=True, ok=(302,)),
    "archive action, asked": Page(
        "post", ADMIN + "/customer/", action("archive_selected", "{customer_id}", confirmed=False)
    ),
    "archive action": Page(
        "post",
        ADMIN + "/customer/",
        action("archive_selected", "{customer_id}"),
        writes=True,
        ok=(302,),
    ),
    "restore action": Page(
        "post",
        ADMIN + "/customer/",
        action("restore_selected", "{archived_id}"),
        writes=True,
        ok=(302,),
    ),
    "erase action": Page(
        "post",
        ADMIN + "/customer/",
        action("erase_selected", "{customer_id}"),
        writes=True,
        ok=(302,),
    ),
    "customer list, searched": Page(
        "get", ADMIN + "/customer/", {"environment": "all", "q": "{word}"}, refused=(200,)
    ),
    "customer list, their environment": Page(
        "get", ADMIN + "/customer/", {"environment": "{environment_id}", "q": "{word}"}, ok=(302,)
    ),
    "customer list, their ids": Page(
        "get",
        ADMIN + "/customer/",
        {"environment": "all", "customer_ids": "{customer_id}"},
        refused=(200,),
    ),
    "CSV export": Page(
        "get", ADMIN + "/customer/export.csv", {"environment": "all", "q": "{word}"}, refused=(200,)
    ),
    "parent autocomplete": Page(
        "get",
        AUTOCOMPLETE,
        {
            "app_label": "customers",
            "model_name": "customer",
            "field_name": "parent",
            "term": "{word}",
        },
        refused=(200,),
    ),
    "parent autocomplete, their environment": Page(
        "get",
        AUTOCOMPLETE,
        {
            "app_label": "customers",
            "model_name": "customer",
            "field_name": "parent",
            "term": "{word}",
            "environment": "{environment_id}",
        },
        refused=(200,),
    ),
    "dashboard": Page("get", "/admin/", refused=(200,)),
    "webhook endpoint list": Page(
        "get", ADMIN + "/webhookendpoint/", {"environment": "{environment_id}"}, refused=(200,)
    ),
    "webhook endpoint page": Page("get", ADMIN + "/webhookendpoint/{endpoint}/change/"),
    "webhook endpoint form": Page(
        "post",
        ADMIN + "/webhookendpoint/{endpoint}/change/",
        endpoint_form(),
        writes=True,
        ok=(302,),
    ),
    "webhook endpoint delete page": Page("get", ADMIN + "/webhookendpoint/{endpoint}/delete/"),
    "webhook endpoint delete": Page(
        "post",
        ADMIN + "/webhookendpoint/{endpoint}/delete/",
        {"post": "yes"},
        writes=True,
        ok=(302,),
    ),
    "webhook endpoint delete action": Page(
        "post",
        ADMIN + "/webhookendpoint/",
        action("delete_selected", "{endpoint_id}"),
        writes=True,
        ok=(302,),
    ),
    "rotate secret confirmation": Page("get", ADMIN + "/webhookendpoint/{endpoint}/rotate_secret/"),
    "rotate secret": Page(
        "post", ADMIN + "/webhookendpoint/{endpoint}/rotate_secret/", writes=True, ok=(302,)
    ),
    "resend a delivery": Page(
        "post",
        ADMIN + "/webhookendpoint/{endpoint}/deliveries/{delivery_id}/resend/",
        writes=True,
        ok=(302,),
    ),
    "import list": Page("get", ADMIN + "/importjob/", refused=(200,)),
    "import job page": Page("get", ADMIN + "/importjob/{job}/change/"),
    "import progress": Page("get", ADMIN + "/importjob/{job}/progress/", shows=False),
    "import start": Page("post", ADMIN + "/importjob/{job}/import/", writes=True, ok=(302,)),
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
    return {"client": client, "parent": parent, "child": child, "endpoint": endpoint, **jobs}


def assert_escaped(html: str, *labels: str) -> None:
    for raw in RAW:
        assert raw not in html
    for label in labels:
        assert escaped_core(label) in html or escape(f"<svg/onload=alert({label})>") in html, label


@dataclass(frozen=True)
class Shown:
    method: str
    path: Callable[[dict], str]
    labels: tuple[str, ...]
    data: Callable[[dict], dict] | None = None
    headers: dict = field(default_factory=dict)


SHOWN = {
    "customer list": Shown("get", lambda w: f"{ADMIN}/customer/", ("parent", "after", "external")),
    "customer list, every environment": Shown(
        "get", lambda w: f"{ADMIN}/customer/?environment=all", ("parent", "after", "external")
    ),
    "customer change page": Shown(
        "get",
        lambda w: f"{ADMIN}/customer/{quote(w['child'].pk)}/change/",
        ("after", "external", "city", "key", "value", "parent"),
    ),
    "parent's change page (children)": Shown(
        "get", lambda w: f"{ADMIN}/customer/{quote(w['parent'].pk)}/change/", ("parent", "after")
    ),
    "refused change form": Shown(
        "post",
        lambda w: f"{ADMIN}/customer/{quote(w['child'].pk)}/change/",
        ("after", "external", "city", "key", "value", "parent"),
        data=lambda w: {
            **customer_form(w["child"], email="not an email", parent=w["parent"].pk),
            "metadata_key": [hostile("key")],
            "metadata_value": [hostile("value")],
        },
    ),
    "history": Shown(
        "get",
        lambda w: f"{ADMIN}/customer/{quote(w['child'].pk)}/history/",
        ("before", "after", "after"),
    ),
    "archive confirmation": Shown(
        "get", lambda w: f"{ADMIN}/customer/{w['child'].pk}/archive/", ("after", "external")
    ),
    "erase confirmation": Shown(
        "get", lambda w: f"{ADMIN}/customer/{w['child'].pk}/erase/", ("after", "external")
    ),
    "archive action's confirmation": Shown(
        "post",
        lambda w: f"{ADMIN}/customer/",
        ("after", "parent"),
        data=lambda w: action("archive_selected", w["child"].pk, w["parent"].pk, confirmed=False),
    ),
    "dashboard": Shown("get", lambda w: "/admin/", ("after", "url", "goodfile", "badfile")),
    "webhook endpoint list": Shown("get", lambda w: f"{ADMIN}/webhookendpoint/", ("url",)),
    "webhook endpoint page and deliveries": Shown(
        "get",
        lambda w: f"{ADMIN}/webhookendpoint/{quote(w['endpoint'].pk)}/change/",
        ("url", "description", "answer", "parent"),
    ),
    "rotate secret confirmation": Shown(
        "get",
        lambda w: f"{ADMIN}/webhookendpoint/{quote(w['endpoint'].pk)}/rotate_secret/",
        ("url",),
    ),
    "webhook endpoint delete page": Shown(
        "get", lambda w: f"{ADMIN}/webhookendpoint/{quote(w['endpoint'].pk)}/delete/", ()
    ),
    "import list": Shown("get", lambda w: f"{ADMIN}/importjob/", ("goodfile", "badfile")),
    "import preview": Shown(
        "get", lambda w: f"{ADMIN}/importjob/{w['good'].pk}/change/", ("goodfile", "row")
    ),
    "import problems": Shown(
        "get", lambda w: f"{ADMIN}/importjob/{w['bad'].pk}/change/", ("badfile", "dupe")
    ),
    "browsable API": Shown(
        "get",
        lambda w: "/v1/customers",
        ("after", "external", "key"),
        headers={"HTTP_ACCEPT": "text/html"},
    ),
}


@pytest.mark.parametrize("name", SHOWN)
def test_hostile_text_is_shown_escaped(hostile_world, name):
    shown = SHOWN[name]
    client = hostile_world["client"]
    data = shown.data(hostile_world) if shown.data else None
    response = getattr(client, shown.method)(shown.path(hostile_world), data, **shown.headers)
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
    path: Callable[[dict], str]
    data: Callable[[dict], dict]
    json: bool = False  # a JSON body (the browsable API's session writes)


CSRF_FORMS = {
    "login": Form(
        lambda w: "/admin/login/", lambda w: {"username": "operator_a", "password": "pw-for-tests"}
    ),
    "logout": Form(lambda w: "/admin/logout/", lambda w: {}),
    "password change": Form(
        lambda w: "/admin/password_change/",
        lambda w: {
            "old_password": "pw-for-tests",
            "new_password1": "A-new-long-pass-phrase-1",
            "new_password2": "A-new-long-pass-phrase-1",
        },
    ),
    "environment switch": Form(
        lambda w: "/environment/switch", lambda w: {"environment_id": "env_a_sandbox"}
    ),
    "customer add": Form(
        lambda w: f"{ADMIN}/customer/add/",
        lambda w: {
            **customer_form(w["customer"], external_id="brand_new"),
            "parent": "",
        },
    ),
    "customer change": Form(
        lambda w: f"{ADMIN}/customer/{quote(w['customer'].pk)}/change/",
        lambda w: customer_form(w["customer"], name="Changed"),
    ),
    "archive": Form(lambda w: f"{ADMIN}/customer/{w['customer'].pk}/archive/", lambda w: {}),
    "restore": Form(lambda w: f"{ADMIN}/customer/{w['archived'].pk}/restore/", lambda w: {}),
    "erase": Form(lambda w: f"{ADMIN}/customer/{w['customer'].pk}/erase/", lambda w: {}),
    "archive action": Form(
        lambda w: f"{ADMIN}/customer/", lambda w: action("archive_selected", w["customer"].pk)
    ),
    "restore action": Form(
        lambda w: f"{ADMIN}/customer/", lambda w: action("restore_selected", w["archived"].pk)
    ),
    "erase action": Form(
        lambda w: f"{ADMIN}/customer/", lambda w: action("erase_selected", w["customer"].pk)
    ),
    "webhook endpoint add": Form(
        lambda w: f"{ADMIN}/webhookendpoint/add/", lambda w: endpoint_form()
    ),
    "webhook endpoint change": Form(
        lambda w: f"{ADMIN}/webhookendpoint/{quote(w['endpoint'].pk)}/change/",
        lambda w: endpoint_form(),
    ),
    "webhook endpoint delete": Form(
        lambda w: f"{ADMIN}/webhookendpoint/{quote(w['endpoint'].pk)}/delete/",
        lambda w: {"post": "yes"},
    ),
    "webhook endpoint delete action": Form(
        lambda w: f"{ADMIN}/webhookendpoint/",
        lambda w: action("delete_selected", w["endpoint"].pk),
    ),
    "rotate secret": Form(
        lambda w: f"{ADMIN}/webhookendpoint/{quote(w['endpoint'].pk)}/rotate_secret/",
        lambda w: {},
    ),
    "resend": Form(
        lambda w: (
            f"{ADMIN}/webhookendpoint/{quote(w['endpoint'].pk)}/deliveries/"
            f"{w['delivery'].pk}/resend/"
        ),
        lambda w: {},
    ),
    "import upload": Form(
        lambda w: f"{ADMIN}/importjob/add/",
        lambda w: {"file": csv_file("new.csv", "external_id,name\nnew_1,New\n")},
    ),
    "import start": Form(lambda w: f"{ADMIN}/importjob/{w['job'].pk}/import/", lambda w: {}),
    "API create (session)": Form(
        lambda w: "/v1/customers", lambda w: {"external_id": "api_new", "name": "New"}, json=True
    ),
    "API webhook endpoint create (session)": Form(
        lambda w: "/v1/webhook_endpoints",
        lambda w: {"url": "http://127.0.0.1:9/new", "enabled_events": ["*"]},
        json=True,
    ),
}


@pytest.fixture
def csrf_world(tenants):
    """tenant_a's objects, and its operator on a client that checks CSRF as browsers do."""
    mine = tenants["mine"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenants["mine_client"].user)
    return {
        "client": client,
        "customer": mine.customer,
        "archived": mine.archived,
        "endpoint": mine.endpoint,
        "delivery": mine.delivery,
        "job": mine.job,
    }


@pytest.mark.parametrize("name", CSRF_FORMS)
def test_every_form_needs_its_csrf_token(csrf_world, name):
    form = CSRF_FORMS[name]
    client = csrf_world["client"]
    if name == "login":
        client.logout()
    url = form.path(csrf_world)

    def post(**extra):
        data = form.data(csrf_world)
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
    client.get("/admin/login/" if name == "login" else "/admin/")
    token = client.cookies["csrftoken"].value
    accepted = post(HTTP_X_CSRFTOKEN=token) if form.json else post(csrfmiddlewaretoken=token)
    assert accepted.status_code in (200, 201, 302), body_of(accepted)[:2000]
    assert "CSRF" not in body_of(accepted)
    changed = admin_state() != before or dict(client.session.items()) != session_before
    assert changed


# --- a login for every page --------------------------------------------------------------------


LOGIN_PAGES = {
    "index and dashboard": lambda t: "/admin/",
    "customer list": lambda t: f"{ADMIN}/customer/",
    "customer add": lambda t: f"{ADMIN}/customer/add/",
    "customer change": lambda t: f"{ADMIN}/customer/{quote(t.customer.pk)}/change/",
    "customer history": lambda t: f"{ADMIN}/customer/{quote(t.customer.pk)}/history/",
    "archive": lambda t: f"{ADMIN}/customer/{t.customer.pk}/archive/",
    "erase": lambda t: f"{ADMIN}/customer/{t.customer.pk}/erase/",
    "CSV export": lambda t: f"{ADMIN}/customer/export.csv",
    "parent autocomplete": lambda t: (
        f"{AUTOCOMPLETE}?app_label=customers&model_name=customer&field_name=parent&term=zq"
    ),
    "webhook endpoints": lambda t: f"{ADMIN}/webhookendpoint/",
    "webhook endpoint": lambda t: f"{ADMIN}/webhookendpoint/{quote(t.endpoint.pk)}/change/",
    "rotate secret": lambda t: f"{ADMIN}/webhookendpoint/{quote(t.endpoint.pk)}/rotate_secret/",
    "imports": lambda t: f"{ADMIN}/importjob/",
    "import upload": lambda t: f"{ADMIN}/importjob/add/",
    "import job": lambda t: f"{ADMIN}/importjob/{t.job.pk}/change/",
    "import progress": lambda t: f"{ADMIN}/importjob/{t.job.pk}/progress/",
}


@pytest.mark.parametrize("name", LOGIN_PAGES)
def test_every_page_needs_a_login(tenants, name):
    url = LOGIN_PAGES[name](tenants["mine"])
    assert tenants["mine_client"].get(url).status_code == 200  # the page is there
    for client in (Client(), non_staff_client()):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/")
        assert not any(text in body_of(response) for text in tenants["mine"].shown)


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
