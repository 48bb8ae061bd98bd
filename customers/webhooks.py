"""Webhooks: endpoints of a scope, the deliveries of its events to them, and the worker's loop.

- Endpoints: created, listed, changed, deleted and given a new secret per scope (at most
  ``MAX_ENDPOINTS_PER_SCOPE``); their URL must be ``https://`` and resolve to public
  addresses unless ``settings.WEBHOOKS_ALLOW_PRIVATE_URLS``.
- Deliveries: one row per event and subscribed enabled endpoint, inserted by
  ``customers.events`` in the event's own transaction (a rolled-back change delivers
  nothing). Requests never send anything themselves.
- ``deliver_due``: what ``deliver_webhooks`` runs. Due deliveries are claimed with
  ``customers.jobs.claim`` (a short ``FOR UPDATE SKIP LOCKED`` transaction that moves them
  a lease ahead), then sent outside any transaction, up to ``WEBHOOKS_CONCURRENCY`` at a
  time on threads that only speak HTTP (a receiver that takes 300 ms to answer would
  otherwise hold a worker to 3 deliveries a second), the results recorded by the worker's
  own thread as they come (those that finished meanwhile together, in one transaction). A
  worker killed mid-batch loses nothing: its claims expire and another worker takes them.
  On PostgreSQL a result's transaction commits without waiting for the WAL's flush
  (``synchronous_commit = off``, for that transaction only): ~1.2 ms of a ~6 ms attempt in
  the benchmark. Only a crash of PostgreSQL itself can then lose the last fraction of a
  second of results, and a delivery whose result was lost is due again when its lease ends
  and is sent again, as for a worker killed between sending and recording (at least once).
"""

import contextlib
import http.client
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from customers import jobs
from customers.bulk import bulk_insert
from customers.ids import WEBHOOK_ENDPOINT_ID_PREFIX, new_webhook_secret
from customers.models import (
    CustomerEvent,
    CustomerEventType,
    Environment,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from customers.representation import event_as_dict, rfc3339
from customers.scope import Scope
from customers.text import abbreviated, text_problem

logger = logging.getLogger("customers.webhooks")

MAX_ENDPOINTS_PER_SCOPE = 20
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
ALL_EVENTS = "*"
# After a rotation the previous secret signs too, for this long (Standard Webhooks allows
# several signatures in one header).
SECRET_OVERLAP = timedelta(hours=24)

# A delivery succeeds on a 2xx within this many seconds (module constants: tests shorten them).
DELIVERY_TIMEOUT_SECONDS = 15.0
# After the first failed attempt, then the second, ...; after the last, the delivery failed.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
RESPONSE_EXCERPT_BYTES = 1024
CLAIM_BATCH_SIZE = 20
# A claim is renewed when less than this is left of it before an attempt.
LEASE_MARGIN = timedelta(seconds=5)
USER_AGENT = "customer-crm-webhooks/1"


def lease_duration() -> timedelta:
    """How long a claim holds (``WEBHOOKS_LEASE_SECONDS``): longer than an attempt, short
    enough that what a killed worker held is sent again within 2 minutes."""
    return timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS)


def private_urls_allowed() -> bool:
    return bool(settings.WEBHOOKS_ALLOW_PRIVATE_URLS)


class WebhookValidationError(Exception):
    """A refused endpoint write: ``errors`` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(errors)


class WebhookEndpointNotFoundError(Exception):
    """No webhook endpoint with that id in the scope."""


# -- Addresses ----------------------------------------------------------------------------------


class UnsafeAddressError(Exception):
    """A URL whose host is, or resolves to, an address that is not public."""


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def resolved_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeAddressError(f"host {abbreviated(host)!r} does not resolve") from error
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UnsafeAddressError(f"host {abbreviated(host)!r} does not resolve")
    return addresses


def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to: all of them public unless ``allow_private``."""
    addresses = resolved_addresses(host, port)
    if not allow_private:
        for address in addresses:
            # A scoped IPv6 address (fe80::1%eth0) is link-local anyway.
            if not is_public_address(ipaddress.ip_address(address.split("%")[0])):
                raise UnsafeAddressError(
                    f"host {abbreviated(host)!r} resolves to {address}, which is not a public"
                    " address"
                )
    return addresses


@dataclass(frozen=True)
class WebhookUrl:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line


def webhook_url_parse(url: str, *, allow_private: bool) -> WebhookUrl:
    """The parts of an endpoint URL; ValueError says what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("must be a valid URL") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise ValueError("must be an https:// URL")
    if not parts.hostname:
        raise ValueError("must be a valid URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password")
    if any(character.isspace() for character in url):
        raise ValueError("must not contain white space")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default_port = 443 if parts.scheme == "https" else 80
    return WebhookUrl(parts.scheme, parts.hostname, port or default_port, target)


def webhook_url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be an endpoint's URL now, or None (it resolves to public addresses,
    unless private URLs are allowed)."""
    if not isinstance(url, str):
        return "must be a string"
    problem = text_problem(url, max_length=MAX_URL_LENGTH)
    if problem:
        return problem
    allow_private = private_urls_allowed()
    try:
        parsed = webhook_url_parse(url, allow_private=allow_private)
        if not allow_private:
            checked_addresses(parsed.host, parsed.port, allow_private=False)
    except ValueError as error:
        return str(error)
    except UnsafeAddressError as error:
        return f"must be a public address: {error}"
    return None


# -- Endpoints ----------------------------------------------------------------------------------

CREATE_FIELDS = ("url", "enabled_events", "description", "enabled")
UPDATE_FIELDS = ("url", "enabled_events", "description", "enabled")
EVENT_TYPES = tuple(CustomerEventType.values)


def enabled_events_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return f'must be a non-empty list of event types, or ["{ALL_EVENTS}"]'
    for item in value:
        if item == ALL_EVENTS:
            if len(value) > 1:
                return f'"{ALL_EVENTS}" must be the only item'
        elif not isinstance(item, str) or item not in EVENT_TYPES:
            shown = abbreviated(item) if isinstance(item, str) else json.dumps(item)[:40]
            return f"has an unknown event type {shown!r}: the types are " + ", ".join(EVENT_TYPES)
    if len(set(value)) != len(value):
        return "must not list a type twice"
    return None


def endpoint_fields_clean(data: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The checked fields of ``data`` (API names); WebhookValidationError otherwise."""
    errors: dict[str, list[str]] = {}
    if creating:
        for name in ("url", "enabled_events"):
            if name not in data:
                errors[name] = ["is required"]
    cleaned: dict[str, Any] = {}
    for name, value in data.items():
        if name == "url":
            problem = webhook_url_problem(value)
        elif name == "enabled_events":
            problem = enabled_events_problem(value)
        elif name == "description":
            problem = (
                text_problem(value, max_length=MAX_DESCRIPTION_LENGTH)
                if isinstance(value, str)
                else "must be a string"
            )
        elif name == "enabled":
            problem = None if isinstance(value, bool) else "must be true or false"
        else:
            problem = "is not a known field"
        if problem:
            errors[name] = [problem]
        else:
            cleaned[name] = value
    if errors:
        raise WebhookValidationError(errors)
    return cleaned


def webhook_endpoints_in_scope(*, scope: Scope):
    return scope.confine(WebhookEndpoint.objects.all()).order_by("created_at", "id")


def webhook_endpoint_list(*, scope: Scope) -> list[WebhookEndpoint]:
    return list(webhook_endpoints_in_scope(scope=scope))


def webhook_endpoint_get(
    *, scope: Scope, endpoint_id: str, for_update: bool = False
) -> WebhookEndpoint:
    endpoint = None
    if endpoint_id.startswith(WEBHOOK_ENDPOINT_ID_PREFIX) and len(endpoint_id) <= 40:
        queryset = webhook_endpoints_in_scope(scope=scope)
        if for_update:
            queryset = queryset.select_for_update()
        endpoint = queryset.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise WebhookEndpointNotFoundError(
            f"no webhook endpoint {abbreviated(endpoint_id)!r} in this environment"
        )
    return endpoint


@transaction.atomic
def webhook_endpoint_create(*, scope: Scope, data: Mapping[str, Any]) -> WebhookEndpoint:
    """A new endpoint of ``scope``; its ``secret`` is shown to the caller this once."""
    fields = endpoint_fields_clean(data, creating=True)
    # One creation at a time per scope, so that two concurrent ones cannot both be the 20th.
    Environment.objects.select_for_update().filter(pk=scope.environment_id).first()
    if webhook_endpoints_in_scope(scope=scope).count() >= MAX_ENDPOINTS_PER_SCOPE:
        raise WebhookValidationError(
            {
                "url": [
                    f"cannot be added: this environment has {MAX_ENDPOINTS_PER_SCOPE} webhook"
                    " endpoints already, the most it may have"
                ]
            }
        )
    now = timezone.now()
    return WebhookEndpoint.objects.create(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        url=fields["url"],
        enabled_events=fields["enabled_events"],
        description=fields.get("description", ""),
        enabled=fields.get("enabled", True),
        secret=new_webhook_secret(),
        created_at=now,
        updated_at=now,
    )


@transaction.atomic
def webhook_endpoint_update(
    *, scope: Scope, endpoint_id: str, data: Mapping[str, Any]
) -> WebhookEndpoint:
    endpoint = webhook_endpoint_get(scope=scope, endpoint_id=endpoint_id, for_update=True)
    fields = endpoint_fields_clean(data, creating=False)
    changed = [name for name, value in fields.items() if getattr(endpoint, name) != value]
    if changed:
        for name in changed:
            setattr(endpoint, name, fields[name])
        endpoint.updated_at = timezone.now()
        endpoint.save(update_fields=[*changed, "updated_at"])
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, scope: Scope, endpoint_id: str) -> None:
    """Delete the endpoint, its deliveries (pending ones are never sent) and their attempts."""
    endpoint = webhook_endpoint_get(scope=scope, endpoint_id=endpoint_id, for_update=True)
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_rotate_secret(*, scope: Scope, endpoint_id: str) -> WebhookEndpoint:
    """A new secret; the one it replaces keeps signing for SECRET_OVERLAP (an older previous
    secret stops at once)."""
    endpoint = webhook_endpoint_get(scope=scope, endpoint_id=endpoint_id, for_update=True)
    now = timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + SECRET_OVERLAP
    endpoint.secret = new_webhook_secret()
    endpoint.updated_at = now
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    return endpoint


def webhook_endpoint_as_dict(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict:
    """The endpoint as the API writes it; ``secret`` only right after it was made."""
    data = {
        "id": endpoint.id,
        "url": endpoint.url,
        "enabled_events": list(endpoint.enabled_events),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "environment_id": endpoint.environment_id,
        "tenant_id": endpoint.tenant_id,
        "created_at": rfc3339(endpoint.created_at),
        "updated_at": rfc3339(endpoint.updated_at),
    }
    if secret:
        data["secret"] = endpoint.secret
    return data


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one
    during its 24 hours."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def webhook_delivery_resend(*, scope: Scope, delivery_id: int) -> WebhookDelivery:
    """Send a delivery once more, at once (the admin's resend): it is pending and due now; a
    delivery that had failed, or was canceled, gets one attempt (failed again if it fails),
    one still retrying keeps its schedule."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .filter(
                pk=delivery_id,
                endpoint__tenant_id=scope.tenant_id,
                endpoint__environment_id=scope.environment_id,
            )
            .first()
        )
        if delivery is None:
            raise WebhookEndpointNotFoundError(f"no webhook delivery {delivery_id} in this scope")
        delivery.status = WebhookDeliveryStatus.PENDING
        delivery.attempt_count = min(delivery.attempt_count, len(RETRY_DELAYS))
        delivery.next_attempt_at = timezone.now()
        delivery.claimed_until = None
        delivery.claim_token = ""
        delivery.finished_at = None
        delivery.save(
            update_fields=[
                "status",
                "attempt_count",
                "next_attempt_at",
                "claimed_until",
                "claim_token",
                "finished_at",
            ]
        )
    return delivery


# -- Deliveries, created with their events ------------------------------------------------------


def subscribed_endpoint_ids(*, scope: Scope, event_type: str) -> list[str]:
    """The enabled endpoints of ``scope`` that take events of ``event_type``."""
    rows = webhook_endpoints_in_scope(scope=scope).filter(enabled=True)
    return [
        endpoint_id
        for endpoint_id, enabled_events in rows.values_list("id", "enabled_events")
        if ALL_EVENTS in enabled_events or event_type in enabled_events
    ]


def webhook_responses_scrub(*, customer, placeholder: str) -> int:
    """Erasure: replace what receivers answered to the customer's deliveries (the first KB
    of each answer is kept, and a receiver may echo the payload back) with ``placeholder``.
    The payloads themselves are not stored: each is the event's JSON, scrubbed already."""
    attempts = WebhookAttempt.objects.filter(
        delivery__event__customer_id=customer.pk,
        delivery__event__environment_id=customer.environment_id,
    ).exclude(response_excerpt="")
    return attempts.update(response_excerpt=placeholder)


def webhook_deliveries_create(*, event: CustomerEvent) -> int:
    """A delivery of ``event`` to each subscribed endpoint, in the caller's transaction."""
    scope = Scope(tenant_id=event.tenant_id, environment_id=event.environment_id)
    endpoint_ids = subscribed_endpoint_ids(scope=scope, event_type=event.type)
    if not endpoint_ids:
        return 0
    return webhook_deliveries_create_bulk(event_ids=[event.id], endpoint_ids=endpoint_ids)


# The other columns are null or have a database default (COPY writes no Django default).
DELIVERY_ATTRIBUTES = ("endpoint_id", "event_id", "status", "next_attempt_at", "created_at")


def event_with_deliveries_insert(event: CustomerEvent) -> None:
    """Insert ``event`` and a delivery of it to each subscribed endpoint, in the caller's
    transaction. On PostgreSQL one statement (a data-modifying CTE: the event's INSERT, then
    the deliveries selected from its scope's enabled endpoints), the write path's one round
    trip for both; elsewhere the event's INSERT, then ``webhook_deliveries_create``."""
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        webhook_deliveries_create(event=event)
        return
    fields = list(CustomerEvent._meta.concrete_fields)
    values = [field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields]
    event_table = connection.ops.quote_name(CustomerEvent._meta.db_table)
    delivery_table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    endpoint_table = connection.ops.quote_name(WebhookEndpoint._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    delivery_columns = ", ".join(
        connection.ops.quote_name(WebhookDelivery._meta.get_field(name).column)
        for name in DELIVERY_ATTRIBUTES
    )
    now = timezone.now()
    with connection.cursor() as cursor:
        # Table and column names from the models; every value is a parameter.
        cursor.execute(
            f"WITH event AS (INSERT INTO {event_table} ({columns}) VALUES ({placeholders})"  # noqa: S608
            " RETURNING id, tenant_id, environment_id, type)"
            f" INSERT INTO {delivery_table} ({delivery_columns})"
            " SELECT endpoint.id, event.id, %s, %s, %s"
            f" FROM event JOIN {endpoint_table} AS endpoint"
            " ON endpoint.tenant_id = event.tenant_id"
            " AND endpoint.environment_id = event.environment_id"
            " WHERE endpoint.enabled AND (endpoint.enabled_events ? %s"
            " OR endpoint.enabled_events ? event.type)",
            [*values, WebhookDeliveryStatus.PENDING.value, now, now, ALL_EVENTS],
        )


def webhook_deliveries_create_bulk(*, event_ids: Iterable[str], endpoint_ids: Sequence[str]) -> int:
    """A delivery of every event to every endpoint, inserted in bulk (COPY on PostgreSQL) in
    the caller's transaction: the import's events too."""
    now = timezone.now()
    rows = (
        (endpoint_id, event_id, WebhookDeliveryStatus.PENDING.value, now, now)
        for event_id in event_ids
        for endpoint_id in endpoint_ids
    )
    return bulk_insert(WebhookDelivery, DELIVERY_ATTRIBUTES, rows)


# -- Sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    duration_ms: int
    response_excerpt: str
    error: str

    @property
    def succeeded(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300


def stored_text(raw: bytes | str) -> str:
    """Text that PostgreSQL stores (no NUL byte), whatever the receiver sent."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text.replace("\x00", "\ufffd")


def signed_headers(
    *, event_id: str, body: str, secrets: Sequence[str], moment: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers, signed by the ``standardwebhooks`` library itself: one
    ``v1,`` signature per secret, space-separated."""
    timestamp = int(moment.timestamp())
    signed_at = datetime.fromtimestamp(timestamp, UTC)
    signature = " ".join(
        Webhook(secret).sign(msg_id=event_id, timestamp=signed_at, data=body) for secret in secrets
    )
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


class Deadlines:
    """One thread that calls each registered function once its deadline has passed: what
    bounds an attempt's whole exchange, instead of a ``threading.Timer`` (a new thread
    started for every attempt: 0.6 ms of the ~6 ms an attempt took in the benchmark)."""

    def __init__(self):
        self.condition = threading.Condition()
        self.pending: dict[object, tuple[float, Any]] = {}
        self.thread: threading.Thread | None = None

    def add(self, seconds: float, function) -> object:
        """Call ``function()`` in ``seconds`` unless cancelled; returns the handle."""
        handle = object()
        with self.condition:
            self.pending[handle] = (time.monotonic() + seconds, function)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self.run, name="webhook-deadlines", daemon=True
                )
                self.thread.start()
            self.condition.notify()
        return handle

    def cancel(self, handle: object) -> None:
        with self.condition:
            self.pending.pop(handle, None)

    def run(self) -> None:
        while True:
            with self.condition:
                now = time.monotonic()
                due = [handle for handle, (at, _) in self.pending.items() if at <= now]
                functions = [self.pending.pop(handle)[1] for handle in due]
                if not functions:
                    nearest = min((at for at, _ in self.pending.values()), default=now + 60)
                    self.condition.wait(timeout=max(nearest - now, 0.001))
                    continue
            for function in functions:
                with contextlib.suppress(Exception):
                    function()


DEADLINES = Deadlines()


def http_post(
    url: str, *, body: bytes, headers: Mapping[str, str], timeout: float
) -> AttemptResult:
    """POST ``body`` to ``url`` and read the first KB of the answer, within ``timeout`` in all.

    The host is resolved once, every address checked (unless private URLs are allowed), and
    the connection made to a checked address (a DNS answer that changes between check and
    connect cannot redirect it); TLS still verifies the certificate for the host name. The
    standard library's ``http.client`` never follows redirects: a 3xx is a failed attempt.
    """
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    def failure(message: str, status_code: int | None = None) -> AttemptResult:
        return AttemptResult(status_code, elapsed_ms(), "", stored_text(message)[:1000])

    allow_private = private_urls_allowed()
    try:
        parsed = webhook_url_parse(url, allow_private=allow_private)
        addresses = checked_addresses(parsed.host, parsed.port, allow_private=allow_private)
    except (ValueError, UnsafeAddressError) as error:
        return failure(f"refused: the URL {error}")

    address = addresses[0]
    if parsed.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parsed.host, parsed.port, timeout=timeout
        )
    else:
        conn = http.client.HTTPConnection(parsed.host, parsed.port, timeout=timeout)
    # Connect to the address that was checked, not to whatever the name resolves to next.
    conn._create_connection = lambda _address, connect_timeout, source=None: (
        socket.create_connection((address, parsed.port), connect_timeout, source)
    )
    timed_out = threading.Event()

    def cut_off() -> None:
        # The socket timeout bounds each read; this bounds the whole exchange (a receiver
        # trickling its answer byte by byte).
        timed_out.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    deadline = DEADLINES.add(timeout, cut_off)
    try:
        conn.request("POST", parsed.target, body=body, headers=dict(headers))
        response = conn.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        if timed_out.is_set() or isinstance(error, TimeoutError | socket.timeout):
            return failure(f"timed out after {timeout:g} s")
        return failure(f"{type(error).__name__}: {error}".rstrip(": "))
    finally:
        DEADLINES.cancel(deadline)
        conn.close()
    if timed_out.is_set():
        return failure(f"timed out after {timeout:g} s", status)
    return AttemptResult(status, elapsed_ms(), stored_text(excerpt), "")


def delivery_body(event: CustomerEvent) -> str:
    """The body sent, exactly as signed: the event's JSON as the API writes it."""
    return json.dumps(event_as_dict(event))


def delivery_attempt(delivery: WebhookDelivery) -> AttemptResult:
    now = timezone.now()
    body = delivery_body(delivery.event)
    headers = signed_headers(
        event_id=delivery.event_id,
        body=body,
        secrets=signing_secrets(delivery.endpoint, now=now),
        moment=now,
    )
    return http_post(
        delivery.endpoint.url,
        body=body.encode(),
        headers=headers,
        timeout=DELIVERY_TIMEOUT_SECONDS,
    )


# -- The worker ---------------------------------------------------------------------------------


def due_deliveries(*, now: datetime):
    """Pending deliveries due at ``now``, the longest due first (the partial index's order)."""
    return WebhookDelivery.objects.filter(
        status=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=now
    ).order_by("next_attempt_at", "id")


def attempts_record(
    *, claim: jobs.Claim, outcomes: Sequence[tuple[WebhookDelivery, AttemptResult]]
) -> list[str]:
    """Keep each attempt and move its delivery on (done, failed, or due again later), all in
    one transaction; returns each delivery's status. A claim lost meanwhile (a lease that ran
    out and was taken over) keeps its attempt but leaves the delivery to its new holder
    ("lost"). The deliveries that share their next state share one UPDATE: a worker records
    what finished while it was recording the last lot in a few statements, not four each."""
    now = timezone.now()
    changes_of: dict[int, dict[str, Any]] = {}
    for delivery, result in outcomes:
        attempts = delivery.attempt_count + 1
        if result.succeeded:
            changes = {"status": WebhookDeliveryStatus.SUCCEEDED, "finished_at": now}
        elif attempts > len(RETRY_DELAYS):
            changes = {"status": WebhookDeliveryStatus.FAILED, "finished_at": now}
        else:
            changes = {"next_attempt_at": now + RETRY_DELAYS[attempts - 1]}
        changes_of[delivery.pk] = {"attempt_count": attempts, **changes}
    ids = list(changes_of)
    with transaction.atomic():
        if connection.vendor == "postgresql":  # see the module's docstring
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        rows = WebhookDelivery.objects.filter(pk__in=ids).values_list("pk", "claim_token", "status")
        if connection.features.has_select_for_update:
            rows = rows.select_for_update()
        existing, held = set(), set()
        for pk, claim_token, status in rows:
            existing.add(pk)
            if claim_token == claim.token and status == WebhookDeliveryStatus.PENDING:
                held.add(pk)
        groups: dict[tuple, list[int]] = {}
        for pk in held:
            groups.setdefault(tuple(sorted(changes_of[pk].items())), []).append(pk)
        for changes, pks in groups.items():
            claim.held(pks).filter(status=WebhookDeliveryStatus.PENDING).update(
                claimed_until=None, claim_token="", **dict(changes)
            )
        WebhookAttempt.objects.bulk_create(
            WebhookAttempt(
                delivery_id=delivery.pk,
                attempted_at=now - timedelta(milliseconds=result.duration_ms),
                status_code=result.status_code,
                duration_ms=result.duration_ms,
                succeeded=result.succeeded,
                response_excerpt=result.response_excerpt,
                error=result.error,
            )
            for delivery, result in outcomes
            if delivery.pk in existing  # not deleted meanwhile (with its endpoint)
        )
    return [
        changes_of[delivery.pk].get("status", WebhookDeliveryStatus.PENDING)
        if delivery.pk in held
        else "lost"
        for delivery, _ in outcomes
    ]


def delivery_cancel(*, delivery: WebhookDelivery, claim: jobs.Claim) -> None:
    """The endpoint was disabled before this was sent: it never will be."""
    claim.held([delivery.pk]).update(
        status=WebhookDeliveryStatus.CANCELED,
        finished_at=timezone.now(),
        claimed_until=None,
        claim_token="",
    )


@dataclass
class WorkerStats:
    attempts: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0


def attempt_or_error(delivery: WebhookDelivery) -> AttemptResult:
    """``delivery_attempt``, run on a sender thread: no database access, and a bug there is an
    attempt with its error, never a lost claim or a stopped worker."""
    try:
        return delivery_attempt(delivery)
    except Exception as error:
        logger.exception("webhook delivery %s could not be attempted", delivery.pk)
        return AttemptResult(None, 0, "", f"internal error: {type(error).__name__}")


def result_count(
    *, delivery: WebhookDelivery, result: AttemptResult, status: str, stats: WorkerStats
) -> None:
    stats.attempts += 1
    if status == WebhookDeliveryStatus.SUCCEEDED:
        stats.succeeded += 1
    elif status == WebhookDeliveryStatus.FAILED:
        stats.failed += 1
    else:
        stats.retried += 1
    if not result.succeeded:
        logger.info(
            "webhook delivery %s of %s to %s: attempt %s failed (%s)",
            delivery.pk,
            delivery.event_id,
            delivery.endpoint_id,
            delivery.attempt_count + 1,
            result.error or f"HTTP {result.status_code}",
        )


def deliveries_claim(*, limit: int) -> tuple[jobs.Claim, list[WebhookDelivery]]:
    """Up to ``limit`` due deliveries, claimed, with their endpoints and events, in the
    order they came due (a delivery whose endpoint was deleted meanwhile is left out)."""
    held = jobs.claim(due_deliveries(now=timezone.now()), limit=limit, lease=lease_duration())
    if not held.ids:
        return held, []
    # Three lookups by primary key, not a join: the planner chose to read the whole event
    # table for the join when its statistics were behind a bulk load (182 ms per batch).
    fetched = (
        WebhookDelivery.objects.filter(pk__in=held.ids, claim_token=held.token)
        .prefetch_related("endpoint", "event")
        .in_bulk()
    )
    return held, [fetched[pk] for pk in held.ids if pk in fetched]


def deliver_batch(
    *, stop: threading.Event, stats: WorkerStats, senders: ThreadPoolExecutor, concurrency: int
) -> int:
    """Send due deliveries, up to ``concurrency`` at a time on the ``senders`` threads (HTTP
    only), until a claim finds nothing more due (or ``stop``); how many were claimed.

    The next batch is claimed as soon as every delivery of the last one has been started, so
    the senders never wait for a batch's slowest answer. This thread records the results as
    they come (those that finished meanwhile together, in one transaction per claim) and
    renews each claim's lease while its deliveries are waiting or in flight."""
    limit = max(CLAIM_BATCH_SIZE, 2 * concurrency)
    queue: deque[tuple[WebhookDelivery, jobs.Claim]] = deque()
    sending: dict[Future, tuple[WebhookDelivery, jobs.Claim]] = {}
    claimed = 0
    exhausted = False
    while True:
        if stop.is_set():
            exhausted = True
            for held, waiting in by_claim(queue):
                # The attempts in hand are finished; the rest is given back, due at once.
                held.release([delivery.pk for delivery, _ in waiting])
            queue.clear()
        if not queue and not exhausted and len(sending) < concurrency:
            held, deliveries = deliveries_claim(limit=limit)
            claimed += len(held.ids)
            exhausted = not held.ids
            queue.extend((delivery, held) for delivery in deliveries)
        leases_renew([*queue, *sending.values()])
        while queue and len(sending) < concurrency:
            delivery, held = queue.popleft()
            if not delivery.endpoint.enabled:
                delivery_cancel(delivery=delivery, claim=held)
                continue
            sending[senders.submit(attempt_or_error, delivery)] = (delivery, held)
        if not sending:
            if exhausted and not queue:
                return claimed
            continue
        done, _ = futures_wait(sending, timeout=1.0, return_when=FIRST_COMPLETED)
        finished = [(*sending.pop(future), future.result()) for future in done]
        for held, items in by_claim(finished):
            outcomes = [(delivery, result) for delivery, _, result in items]
            statuses = attempts_record(claim=held, outcomes=outcomes)
            for (delivery, result), status in zip(outcomes, statuses, strict=True):
                result_count(delivery=delivery, result=result, status=status, stats=stats)


def by_claim(items: Iterable[tuple]) -> list[tuple[jobs.Claim, list[tuple]]]:
    """``items`` (a delivery, its claim, ...) grouped by their claim, in the order met."""
    groups: dict[int, tuple[jobs.Claim, list[tuple]]] = {}
    for item in items:
        groups.setdefault(id(item[1]), (item[1], []))[1].append(item)
    return list(groups.values())


def leases_renew(holding: Iterable[tuple[WebhookDelivery, jobs.Claim]]) -> None:
    """Renew each claim that could run out before an attempt started now would end, for its
    deliveries in ``holding`` (waiting or in flight)."""
    within = timedelta(seconds=DELIVERY_TIMEOUT_SECONDS) + LEASE_MARGIN
    for held, items in by_claim(holding):
        if held.needs_renewal(within=within):
            held.renew(lease=lease_duration(), ids=[delivery.pk for delivery, *_ in items])


def deliver_due(
    *,
    once: bool,
    stop: threading.Event | None = None,
    poll_seconds: float = 1.0,
    concurrency: int | None = None,
) -> WorkerStats:
    """Deliver until ``stop`` is set (``once``: until nothing is due, then return), sending
    up to ``concurrency`` (``WEBHOOKS_CONCURRENCY``) deliveries at a time."""
    concurrency = concurrency or settings.WEBHOOKS_CONCURRENCY
    stats = WorkerStats()
    with ThreadPoolExecutor(
        max_workers=concurrency, thread_name_prefix="webhook-sender"
    ) as senders:
        jobs.run_worker(
            lambda stop: deliver_batch(
                stop=stop, stats=stats, senders=senders, concurrency=concurrency
            ),
            name="deliver_webhooks",
            once=once,
            stop=stop,
            poll_seconds=poll_seconds,
        )
    return stats
