"""Webhook endpoints in the admin pages: the operator's tenants' endpoints only, every write
through customers.webhooks (its checks and messages), the secret shown once, rotation behind
a confirmation, deliveries with their attempts in a fixed number of queries, and resend."""

import re
import socket
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.events import Actor
from customers.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from customers.services import customer_create, staff_user_upsert
from customers.webhooks import MAX_ENDPOINTS_PER_SCOPE

pytestmark = pytest.mark.django_db

LIST = "/admin/customers/webhookendpoint/"
ADD = f"{LIST}add/"


def change_url(endpoint) -> str:
    return f"{LIST}{quote(endpoint.pk)}/change/"


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """*.example.com resolves to a public address without a network (as in
    test_api_webhooks), `internal.example.com` to a private one."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "internal.example.com":
            host = "10.1.2.3"
        elif isinstance(host, str) and host.endswith("example.com"):
            host = "93.184.215.14"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def operator(scope_a, scope_a_sandbox, scope_b) -> Client:
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    return client


def endpoint_in(scope, **fields) -> WebhookEndpoint:
    values = {
        "url": "https://hooks.example.com/crm",
        "enabled_events": ["*"],
        "secret": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
    }
    return WebhookEndpoint.objects.create(
        tenant_id=scope.tenant_id, environment_id=scope.environment_id, **(values | fields)
    )


def shown_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def form_data(**fields) -> dict:
    data = {
        "url": "https://hooks.example.com/crm",
        "enabled_events": ["*"],
        "description": "",
        "enabled": "on",
    }
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


# --- the list and the scope ------------------------------------------------------------------


def test_the_list_shows_only_the_operators_tenants_endpoints(
    operator, scope_a, scope_a_sandbox, scope_b
):
    mine = endpoint_in(scope_a.scope, url="https://mine.example.com/a")
    sandbox = endpoint_in(
        scope_a_sandbox.scope,
        url="https://sandbox.example.com/a",
        enabled_events=["customer.created"],
    )
    theirs = endpoint_in(scope_b.scope, url="https://theirs.example.com/b")
    html = operator.get(LIST).content.decode()
    assert mine.url in html
    assert sandbox.url in html
    assert "customer.created" in html
    assert "tenant_a / env_a_sandbox" in html
    assert theirs.url not in html
    # Nor offered as a filter choice.
    assert "env_b" not in html


def test_another_tenants_endpoint_cannot_be_opened_or_changed(operator, scope_b):
    theirs = endpoint_in(scope_b.scope)
    for url in (
        change_url(theirs),
        f"{LIST}{theirs.pk}/rotate_secret/",
        f"{LIST}{theirs.pk}/delete/",
    ):
        response = operator.get(url)
        assert response.status_code in (302, 404), url
        assert theirs.url not in response.content.decode()
    assert operator.post(f"{LIST}{theirs.pk}/rotate_secret/").status_code == 404
    assert operator.post(
        change_url(theirs), form_data(url="https://x.example.com/")
    ).status_code in (
        302,
        404,
    )
    theirs.refresh_from_db()
    assert theirs.url == "https://hooks.example.com/crm"
    assert theirs.secret == "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


def test_a_user_without_tenants_sees_none(scope_a):
    endpoint_in(scope_a.scope)
    user = get_user_model().objects.create_user("nobody", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    response = client.get(LIST)
    assert response.status_code == 403  # no permission on the model


# --- create, change, delete: through the services --------------------------------------------


def test_create_in_the_current_environment_shows_the_secret_once(operator, scope_a_sandbox):
    operator.post("/environment/switch", {"environment_id": "env_a_sandbox"})
    page = operator.get(ADD).content.decode()
    assert "tenant_a / env_a_sandbox" in page
    response = operator.post(
        ADD,
        form_data(enabled_events=["customer.created", "customer.erased"], description="Sync"),
    )
    assert response.status_code == 302, response.content.decode()
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.tenant_id, endpoint.environment_id) == ("tenant_a", "env_a_sandbox")
    assert endpoint.enabled_events == ["customer.created", "customer.erased"]
    assert endpoint.description == "Sync"
    assert endpoint.secret.startswith("whsec_")
    shown = operator.get(response["Location"]).content.decode()
    assert endpoint.secret in shown
    assert 'class="webhook-secret"' in shown
    # Once: the change page never shows it again.
    assert endpoint.secret not in operator.get(change_url(endpoint)).content.decode()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "http://hooks.example.com/crm"}, "url", "Must be an https:// URL"),
        ({"url": "https://127.0.0.1/hook"}, "url", "which is not a public address"),
        ({"url": "https://internal.example.com/h"}, "url", "resolves to 10.1.2.3"),
        ({"url": ""}, "url", "Must be"),
        ({"enabled_events": []}, "enabled_events", "Must be a non-empty list of event types"),
        (
            {"enabled_events": ["*", "customer.created"]},
            "enabled_events",
            "must be the only item",
        ),
    ],
)
def test_create_refuses_what_the_api_refuses_with_its_messages(
    operator, settings, fields, field, message
):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = operator.post(ADD, form_data(**fields))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not WebhookEndpoint.objects.exists()


def test_private_urls_are_accepted_when_the_setting_says_so(operator, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    response = operator.post(ADD, form_data(url="http://127.0.0.1:9/hook"))
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().url == "http://127.0.0.1:9/hook"


def test_the_twenty_first_endpoint_is_refused_with_the_services_message(operator, scope_a):
    for number in range(MAX_ENDPOINTS_PER_SCOPE):
        endpoint_in(scope_a.scope, url=f"https://h{number}.example.com/")
    response = operator.post(ADD, form_data(), follow=True)
    assert any("the most it may have" in text for text in shown_messages(response))
    assert WebhookEndpoint.objects.count() == MAX_ENDPOINTS_PER_SCOPE


def test_change_updates_only_what_changed_through_the_service(operator, scope_a, settings):
    endpoint = endpoint_in(scope_a.scope, url="https://old.example.com/x")
    before = endpoint.updated_at
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = operator.post(
        change_url(endpoint),
        form_data(
            url="https://old.example.com/x", enabled_events=["customer.updated"], enabled=None
        ),
    )
    assert response.status_code == 302, response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.enabled_events == ["customer.updated"]
    assert endpoint.enabled is False
    assert endpoint.updated_at > before
    refused = operator.post(change_url(endpoint), form_data(url="https://10.0.0.8/hook"))
    assert refused.status_code == 200
    assert "not a public address" in " ".join(refused.context["adminform"].form.errors["url"])
    endpoint.refresh_from_db()
    assert endpoint.url == "https://old.example.com/x"


def test_delete_goes_through_the_service_with_its_deliveries(operator, scope_a):
    endpoint = endpoint_in(scope_a.scope)
    customer_create(scope=scope_a.scope, data={"external_id": "c1", "name": "C"}, actor=ACTOR)
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    page = operator.get(f"{LIST}{endpoint.pk}/delete/").content.decode()
    assert "1 delivery and their attempts" in page
    response = operator.post(f"{LIST}{endpoint.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()


# --- rotation ----------------------------------------------------------------------------------


def test_rotate_asks_first_then_shows_the_new_secret_once(operator, scope_a):
    endpoint = endpoint_in(scope_a.scope)
    old = endpoint.secret
    confirmation = operator.get(f"{LIST}{endpoint.pk}/rotate_secret/")
    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "Are you sure" in page
    assert 'method="post"' in page
    endpoint.refresh_from_db()
    assert endpoint.secret == old  # a GET changes nothing
    response = operator.post(f"{LIST}{endpoint.pk}/rotate_secret/")
    assert response["Location"] == change_url(endpoint)
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert endpoint.previous_secret == old
    shown = operator.get(response["Location"]).content.decode()
    assert endpoint.secret in shown
    assert "24 hours" in unescape(shown)
    assert endpoint.secret not in operator.get(change_url(endpoint)).content.decode()


# --- deliveries and attempts, and resend -----------------------------------------------------

ACTOR = Actor.command("tests")


def deliveries_for(scope, endpoint, count: int) -> list[WebhookDelivery]:
    for number in range(count):
        customer_create(
            scope=scope,
            data={"external_id": f"d{number}", "name": f"Delivered {number}"},
            actor=ACTOR,
        )
    deliveries = list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id"))
    now = timezone.now()
    for delivery in deliveries:
        for attempt in range(2):
            WebhookAttempt.objects.create(
                delivery=delivery,
                attempted_at=now - timedelta(seconds=10 - attempt),
                status_code=500 if attempt == 0 else 204,
                duration_ms=12 + attempt,
                succeeded=attempt == 1,
                response_excerpt="boom " * 50 if attempt == 0 else "",
            )
    return deliveries


def change_page_queries(client, endpoint) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(change_url(endpoint))
    assert response.status_code == 200
    return len(queries.captured_queries), response.content.decode()


def test_the_change_page_lists_deliveries_and_attempts_without_n_plus_1(operator, scope_a):
    endpoint = endpoint_in(scope_a.scope)
    deliveries_for(scope_a.scope, endpoint, 2)
    operator.get(change_url(endpoint))  # Django's per-process caches (content types) filled
    few, html = change_page_queries(operator, endpoint)
    assert "Recent deliveries (2)" in html
    assert "customer.created" in html
    assert "Delivered 0" in html
    assert "Delivered 1" in html
    assert "HTTP 500" in html
    assert "HTTP 204" in html
    assert "12 ms" in html
    assert "boom boom" in html
    assert html.count('class="resend-delivery"') == 2
    for number in range(2, 12):
        customer_create(
            scope=scope_a.scope,
            data={"external_id": f"e{number}", "name": f"N {number}"},
            actor=ACTOR,
        )
    for delivery in WebhookDelivery.objects.filter(attempts__isnull=True):
        WebhookAttempt.objects.create(delivery=delivery, status_code=502, duration_ms=7)
    many, html = change_page_queries(operator, endpoint)
    assert "Recent deliveries (12)" in html
    assert html.count("HTTP 502") == 10
    # The same queries for 2 deliveries as for 12, each with its attempts, customer and event.
    assert many == few


def test_resend_puts_a_failed_delivery_due_again_through_the_service(operator, scope_a):
    endpoint = endpoint_in(scope_a.scope)
    [delivery] = deliveries_for(scope_a.scope, endpoint, 1)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDeliveryStatus.FAILED, attempt_count=8, finished_at=timezone.now()
    )
    url = f"{LIST}{endpoint.pk}/deliveries/{delivery.pk}/resend/"
    assert operator.get(url).status_code == 405
    response = operator.post(url)
    assert response.status_code == 302
    assert response["Location"] == change_url(endpoint) + "#deliveries"
    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.PENDING
    assert delivery.next_attempt_at <= timezone.now()
    assert delivery.finished_at is None
    assert any("sent again" in text for text in shown_messages(response))


def test_resend_is_confined_to_the_endpoint_and_the_tenants(operator, scope_a, scope_b):
    mine = endpoint_in(scope_a.scope)
    theirs = endpoint_in(scope_b.scope)
    deliveries_for(scope_b.scope, theirs, 1)
    [their_delivery] = WebhookDelivery.objects.filter(endpoint=theirs)
    WebhookDelivery.objects.filter(pk=their_delivery.pk).update(status=WebhookDeliveryStatus.FAILED)
    for url in (
        f"{LIST}{theirs.pk}/deliveries/{their_delivery.pk}/resend/",
        f"{LIST}{mine.pk}/deliveries/{their_delivery.pk}/resend/",
    ):
        assert operator.post(url).status_code == 404
    their_delivery.refresh_from_db()
    assert their_delivery.status == WebhookDeliveryStatus.FAILED


def test_the_endpoint_admin_page_names_no_secret_in_its_list(operator, scope_a):
    endpoint = endpoint_in(scope_a.scope)
    html = operator.get(LIST).content.decode()
    assert endpoint.secret not in html
    assert re.search(r"whsec_", html) is None


def test_the_bulk_delete_action_goes_through_the_service_within_the_tenants(
    operator, scope_a, scope_b
):
    mine = endpoint_in(scope_a.scope)
    theirs = endpoint_in(scope_b.scope, url="https://theirs.example.com/b")
    data = {"action": "delete_selected", "_selected_action": [mine.pk, theirs.pk]}
    confirmation = operator.post(LIST, data)
    assert confirmation.status_code == 200
    assert mine.url in confirmation.content.decode()
    assert theirs.url not in confirmation.content.decode()
    response = operator.post(LIST, {**data, "post": "yes"})
    assert response.status_code == 302
    assert list(WebhookEndpoint.objects.values_list("pk", flat=True)) == [theirs.pk]
