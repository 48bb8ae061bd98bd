"""`/v1/webhook_endpoints`: per scope, strict, a once-shown secret, SSRF-safe URLs; and the
deliveries every event creates in its own transaction."""

import base64
import json
import socket
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from customers.events import Actor, customer_created_events_record
from customers.models import (
    CustomerEvent,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from customers.services import customer_create
from customers.shape import FIELD_NAMES
from customers.tests.factories import make_customer
from customers.webhooks import MAX_ENDPOINTS_PER_SCOPE

pytestmark = pytest.mark.django_db

URL = "/v1/webhook_endpoints"
ENDPOINT_KEYS = [
    "id",
    "url",
    "enabled_events",
    "description",
    "enabled",
    "environment_id",
    "tenant_id",
    "created_at",
    "updated_at",
]


def send(api, method: str, path: str, body=None, **headers):
    data = json.dumps(body) if body is not None else None
    return getattr(api, method)(path, data=data, content_type="application/json", **headers)


def create(api, **fields) -> dict:
    body = {"url": "https://hooks.example.com/crm", "enabled_events": ["*"], **fields}
    response = send(api, "post", URL, body)
    assert response.status_code == 201, response.content
    return response.json()


def refusal(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """Names resolve without a network: *.example.com to a public address (TEST-NET is
    reserved, so a documentation range would be refused), `internal.example.com` to a
    private one; IP literals and localhost as the system resolves them."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "internal.example.com":
            host = "10.1.2.3"
        elif isinstance(host, str) and host.endswith("example.com"):
            host = "93.184.215.14"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


# --- the endpoints ----------------------------------------------------------------------------


def test_create_answers_the_endpoint_and_its_secret_once(api, scope_a):
    created = create(api, description="Billing sync", enabled_events=["customer.created"])
    assert list(created) == [*ENDPOINT_KEYS, "secret"]
    assert created["id"].startswith("we_")
    assert len(created["id"]) == 3 + 26
    assert created["url"] == "https://hooks.example.com/crm"
    assert created["enabled_events"] == ["customer.created"]
    assert created["description"] == "Billing sync"
    assert created["enabled"] is True
    assert created["environment_id"] == scope_a.scope.environment_id
    assert created["created_at"].endswith("Z")
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) >= 24

    read = api.get(f"{URL}/{created['id']}").json()
    assert list(read) == ENDPOINT_KEYS
    assert {k: v for k, v in created.items() if k != "secret"} == read
    assert api.get(URL).json() == {"items": [read]}


def test_secrets_are_random(api):
    assert create(api)["secret"] != create(api)["secret"]


def test_patch_changes_the_four_fields_and_ignores_server_owned_ones(api):
    endpoint = create(api)
    changed = send(
        api,
        "patch",
        f"{URL}/{endpoint['id']}",
        {
            "url": "https://other.example.com/in",
            "enabled_events": ["customer.updated", "customer.archived"],
            "description": "now",
            "enabled": False,
            "id": "we_something_else",
            "created_at": "2020-01-01T00:00:00Z",
        },
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert body["id"] == endpoint["id"]
    assert body["created_at"] == endpoint["created_at"]
    assert "secret" not in body
    assert (body["url"], body["enabled_events"], body["description"], body["enabled"]) == (
        "https://other.example.com/in",
        ["customer.updated", "customer.archived"],
        "now",
        False,
    )
    assert body["updated_at"] >= endpoint["updated_at"]
    assert api.get(f"{URL}/{endpoint['id']}").json() == body


def test_delete_removes_it(api):
    endpoint = create(api)
    assert api.delete(f"{URL}/{endpoint['id']}").status_code == 204
    assert refusal(api.get(f"{URL}/{endpoint['id']}"), 404)["code"] == "not_found"
    assert api.get(URL).json() == {"items": []}


def test_rotate_secret_answers_a_new_secret_and_keeps_the_old_for_a_day(api):
    endpoint = create(api)
    rotated = api.post(f"{URL}/{endpoint['id']}/rotate_secret")
    assert rotated.status_code == 200, rotated.content
    body = rotated.json()
    assert list(body) == [*ENDPOINT_KEYS, "secret"]
    assert body["secret"] != endpoint["secret"]
    stored = WebhookEndpoint.objects.get(pk=endpoint["id"])
    assert stored.secret == body["secret"]
    assert stored.previous_secret == endpoint["secret"]
    hours = (stored.previous_secret_expires_at - stored.updated_at).total_seconds() / 3600
    assert hours == pytest.approx(24)


def test_unknown_body_fields_are_named(api):
    error = refusal(
        send(api, "post", URL, {"url": "https://a.example.com", "enabled_events": ["*"], "x": 1})
    )
    assert error["details"] == {"x": ["is not a known field"]}
    endpoint = create(api)
    error = refusal(send(api, "patch", f"{URL}/{endpoint['id']}", {"secret": "whsec_AAAA"}))
    assert error["details"] == {"secret": ["is not a known field"]}
    assert WebhookEndpoint.objects.get(pk=endpoint["id"]).secret == endpoint["secret"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"enabled_events": ["*"]}, "url", "is required"),
        ({"url": "https://a.example.com"}, "enabled_events", "is required"),
        (
            {"url": "https://a.example.com", "enabled_events": []},
            "enabled_events",
            'must be a non-empty list of event types, or ["*"]',
        ),
        (
            {"url": "https://a.example.com", "enabled_events": "*"},
            "enabled_events",
            'must be a non-empty list of event types, or ["*"]',
        ),
        (
            {"url": "https://a.example.com", "enabled_events": ["*", "customer.created"]},
            "enabled_events",
            '"*" must be the only item',
        ),
        (
            {"url": "https://a.example.com", "enabled_events": ["customer.deleted"]},
            "enabled_events",
            "has an unknown event type 'customer.deleted': the types are customer.created, "
            "customer.updated, customer.archived, customer.restored, customer.erased",
        ),
        (
            {"url": "ftp://a.example.com", "enabled_events": ["*"]},
            "url",
            "must be an https:// URL",
        ),
        (
            {"url": "https://user:pw@a.example.com", "enabled_events": ["*"]},
            "url",
            "must not contain a user name or password",
        ),
        ({"url": "https://a\x00.example.com", "enabled_events": ["*"]}, "url", None),
        (
            {"url": "https://a.example.com", "enabled_events": ["*"], "description": 5},
            "description",
            "must be a string",
        ),
        (
            {"url": "https://a.example.com", "enabled_events": ["*"], "enabled": "yes"},
            "enabled",
            "must be true or false",
        ),
    ],
)
def test_invalid_fields_are_a_400_naming_them(api, body, field, message):
    error = refusal(send(api, "post", URL, body))
    assert field in error["details"], error
    if message:
        assert error["details"][field] == [message]
    assert not WebhookEndpoint.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(api):
    assert refusal(send(api, "post", URL, ["url"]))["details"] == {
        "body": ["must be a JSON object"]
    }


def test_query_parameters_are_refused(api):
    assert refusal(api.get(f"{URL}?limit=5"))["details"] == {"limit": ["is not a known parameter"]}


def test_at_most_20_per_scope(api, scope_b):
    for _ in range(MAX_ENDPOINTS_PER_SCOPE):
        create(api)
    error = refusal(
        send(api, "post", URL, {"url": "https://a.example.com", "enabled_events": ["*"]})
    )
    assert "20 webhook endpoints already" in error["message"]
    assert WebhookEndpoint.objects.count() == MAX_ENDPOINTS_PER_SCOPE
    create(scope_b.client())  # another scope has its own 20


def test_endpoints_are_per_scope(api, scope_b, scope_a_sandbox):
    endpoint = create(api)
    for other in (scope_b.client(), scope_a_sandbox.client()):
        assert other.get(URL).json() == {"items": []}
        path = f"{URL}/{endpoint['id']}"
        assert refusal(other.get(path), 404)["code"] == "not_found"
        assert refusal(send(other, "patch", path, {"enabled": False}), 404)["code"] == "not_found"
        assert refusal(other.delete(path), 404)["code"] == "not_found"
        assert refusal(other.post(f"{path}/rotate_secret"), 404)["code"] == "not_found"
    assert api.get(f"{URL}/{endpoint['id']}").json()["enabled"] is True


def test_without_a_key_it_is_a_401(client):
    assert refusal(client.get(URL), 401)["code"] == "unauthenticated"


def test_idempotency_key_replays_the_creation(api):
    body = {"url": "https://a.example.com", "enabled_events": ["*"]}
    first = send(api, "post", URL, body, HTTP_IDEMPOTENCY_KEY="make-hook")
    again = send(api, "post", URL, body, HTTP_IDEMPOTENCY_KEY="make-hook")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert WebhookEndpoint.objects.count() == 1


# --- SSRF: only public https:// URLs when private ones are not allowed ---------------------------


@pytest.fixture
def public_only(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/crm", "must be an https:// URL"),
        ("https://127.0.0.1/hook", "which is not a public address"),
        ("https://127.0.0.1:8443/hook", "which is not a public address"),
        ("https://10.0.0.8/hook", "which is not a public address"),
        ("https://192.168.1.1/hook", "which is not a public address"),
        ("https://169.254.169.254/latest/meta-data", "which is not a public address"),
        ("https://100.64.0.1/hook", "which is not a public address"),
        ("https://0.0.0.0/hook", "which is not a public address"),
        ("https://[::1]/hook", "which is not a public address"),
        ("https://[fe80::1]/hook", "which is not a public address"),
        ("https://[::ffff:127.0.0.1]/hook", "which is not a public address"),
        ("https://localhost/hook", "which is not a public address"),
        ("https://internal.example.com/hook", "resolves to 10.1.2.3"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_private_and_plain_http_urls_are_refused(api, public_only, url, message):
    error = refusal(send(api, "post", URL, {"url": url, "enabled_events": ["*"]}))
    assert list(error["details"]) == ["url"]
    assert message in error["details"]["url"][0]
    endpoint = create(api)
    error = refusal(send(api, "patch", f"{URL}/{endpoint['id']}", {"url": url}))
    assert message in error["details"]["url"][0]


def test_a_public_https_url_is_accepted_when_private_ones_are_not(api, public_only):
    assert create(api, url="https://hooks.example.com:8443/crm?tenant=1")["url"].endswith("=1")


def test_private_urls_are_allowed_when_the_setting_says_so(api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    assert create(api, url="http://127.0.0.1:9/hook")["url"] == "http://127.0.0.1:9/hook"


# --- deliveries, created with their events --------------------------------------------------------


def endpoint_in(scope, **fields) -> WebhookEndpoint:
    values = {"url": "https://hooks.example.com/crm", "enabled_events": ["*"], "secret": "whsec_x"}
    return WebhookEndpoint.objects.create(
        tenant_id=scope.tenant_id, environment_id=scope.environment_id, **(values | fields)
    )


def test_each_event_is_delivered_to_each_subscribed_enabled_endpoint(api, scope_a, scope_b):
    everything = endpoint_in(scope_a.scope)
    created_only = endpoint_in(scope_a.scope, enabled_events=["customer.created"])
    endpoint_in(scope_a.scope, enabled=False)
    endpoint_in(scope_b.scope)
    customer = send(api, "post", "/v1/customers", {"external_id": "c1", "name": "One"}).json()
    send(api, "patch", f"/v1/customers/{customer['id']}", {"name": "Two"})
    created, updated = CustomerEvent.objects.order_by("created_at", "id")
    deliveries = {
        (d.event_id, d.endpoint_id)
        for d in WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING)
    }
    assert deliveries == {
        (created.id, everything.id),
        (created.id, created_only.id),
        (updated.id, everything.id),
    }


def test_a_write_that_is_rolled_back_creates_no_delivery(scope_a):
    endpoint_in(scope_a.scope)

    class RolledBackError(Exception):
        pass

    def write_then_fail():
        with transaction.atomic():
            customer_create(
                scope=scope_a.scope,
                data={"external_id": "gone", "name": "Gone"},
                actor=Actor.command("test"),
            )
            assert WebhookDelivery.objects.count() == 1  # it was there, in the transaction
            raise RolledBackError

    with pytest.raises(RolledBackError):
        write_then_fail()
    assert not CustomerEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_bulk_created_events_get_their_deliveries_in_bulk(scope_a):
    first = endpoint_in(scope_a.scope, enabled_events=["customer.created"])
    second = endpoint_in(scope_a.scope)
    endpoint_in(scope_a.scope, enabled_events=["customer.updated"])
    objects = [
        dict.fromkeys(FIELD_NAMES) | {"id": f"cust_bulk{n}", "name": f"N{n}"} for n in range(5)
    ]
    for item in objects:
        make_customer(scope_a.scope, id=item["id"])
    inserted = customer_created_events_record(
        customers=objects, scope=scope_a.scope, actor=Actor.command("import_customers")
    )
    assert inserted == 5
    event_ids = set(CustomerEvent.objects.values_list("id", flat=True))
    pairs = set(WebhookDelivery.objects.values_list("event_id", "endpoint_id"))
    assert pairs == {(e, w) for e in event_ids for w in (first.id, second.id)}


def test_no_endpoint_no_delivery(scope_a):
    objects = [dict.fromkeys(FIELD_NAMES) | {"id": "cust_lonely", "name": "L"}]
    make_customer(scope_a.scope, id="cust_lonely")
    customer_created_events_record(
        customers=objects, scope=scope_a.scope, actor=Actor.command("import_customers")
    )
    assert CustomerEvent.objects.count() == 1
    assert not WebhookDelivery.objects.exists()


def test_an_import_delivers_its_events(scope_a, tmp_path):
    endpoint_in(scope_a.scope)
    path = tmp_path / "customers.csv"
    path.write_text("external_id,name\nimp-1,One\nimp-2,Two\nimp-3,Three\n")
    call_command(
        "import_customers",
        str(path),
        tenant=scope_a.scope.tenant_id,
        environment=scope_a.scope.environment_id,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    assert WebhookDelivery.objects.count() == 3
    assert set(WebhookDelivery.objects.values_list("event_id", flat=True)) == set(
        CustomerEvent.objects.values_list("id", flat=True)
    )


@pytest.mark.postgres
def test_an_event_and_its_deliveries_are_written_in_one_statement(api, scope_a):
    """On PostgreSQL the write path pays one round trip for both: the event's INSERT and the
    deliveries selected from the scope's subscribed endpoints, in one data-modifying CTE."""
    endpoint_in(scope_a.scope)
    endpoint_in(scope_a.scope, enabled_events=["customer.created"])
    customer = send(api, "post", "/v1/customers", {"external_id": "c1", "name": "One"}).json()
    with CaptureQueriesContext(connection) as queries:
        send(api, "patch", f"/v1/customers/{customer['id']}", {"name": "Two"})
    statements = [
        query["sql"]
        for query in queries
        if "customers_customerevent" in query["sql"] or "customers_webhookendpoint" in query["sql"]
    ]
    assert len(statements) == 1, statements
    assert statements[0].startswith("WITH event AS (INSERT")
    assert WebhookDelivery.objects.count() == 3  # created: both endpoints; updated: one
