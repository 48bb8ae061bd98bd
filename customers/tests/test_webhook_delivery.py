"""Webhook delivery against a real HTTP receiver on 127.0.0.1: signatures (verified with the
`standardwebhooks` library), retries after 500s and timeouts, redirects not followed, secret
rotation, SSRF checks at delivery, racing workers, and workers killed or stopped."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from customers import webhooks
from customers.events import Actor
from customers.models import (
    CustomerEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from customers.representation import event_as_dict
from customers.services import customer_create
from customers.tests.helpers import run_together

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 30  # every wait in this module gives up after this long


class ReceiverServer(ThreadingHTTPServer):
    # A listen backlog like a real server's (socketserver's default, 5, resets connections
    # when several workers, each sending several at a time, connect at once).
    request_queue_size = 128


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every request and answers with
    ``respond(number, body) -> (status, body, headers, delay_seconds)``."""

    def __init__(self, respond: Callable[[int, bytes], tuple] | None = None):
        self.respond = respond or (lambda number, body: (200, b"ok", {}, 0))
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    number = len(receiver.requests)
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                    )
                status, answer, headers, delay = receiver.respond(number, body)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the worker gave up waiting

            def log_message(self, *args):
                pass

        self.server = ReceiverServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/crm"

    def ids(self) -> list[str]:
        with self.lock:
            return [request["headers"]["webhook-id"] for request in self.requests]

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} requests arrived"
            time.sleep(0.01)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    started.thread.start()
    try:
        yield started
    finally:
        started.server.shutdown()
        started.server.server_close()


def endpoint_for(scope, url: str, **fields) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        url=url,
        enabled_events=fields.pop("enabled_events", ["*"]),
        secret=fields.pop("secret", None) or "whsec_" + "QUJD" * 8,
        **fields,
    )


def change(scope, number: int = 1) -> list[CustomerEvent]:
    """``number`` customer.created events in ``scope`` (each in its own transaction)."""
    for _ in range(number):
        customer_create(
            scope=scope,
            data={"external_id": f"hook-{time.monotonic_ns()}", "name": "Hooked"},
            actor=Actor.command("test"),
        )
    return list(CustomerEvent.objects.order_by("created_at", "id"))


def deliver() -> str:
    out = StringIO()
    call_command("deliver_webhooks", "--once", stdout=out)
    return out.getvalue()


def make_due() -> None:
    """Jump to when the retries are due (instead of waiting 5 s, 5 min, ...)."""
    WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING).update(
        next_attempt_at=timezone.now()
    )


# --- one worker (SQLite and PostgreSQL) -----------------------------------------------------------


@pytest.mark.django_db
def test_the_event_arrives_signed_as_standard_webhooks_verify_it(api, receiver):
    created = api.post(
        "/v1/webhook_endpoints", {"url": receiver.url, "enabled_events": ["*"]}, format="json"
    ).json()
    customer = api.post(
        "/v1/customers", {"external_id": "w1", "name": "Wébhook “quoted”"}, format="json"
    ).json()
    assert receiver.requests == []  # the write sent nothing: only a row until the worker runs
    assert "1 delivered" in deliver()

    [request] = receiver.requests
    event = CustomerEvent.objects.get()
    assert request["path"] == "/hooks/crm"
    headers = request["headers"]
    assert headers["webhook-id"] == event.id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["Content-Type"] == "application/json"
    payload = Webhook(created["secret"]).verify(request["body"], headers)
    assert request["body"] == json.dumps(event_as_dict(event)).encode()
    assert payload == api.get(f"/v1/events/{event.id}").json()
    assert payload["data"]["object"] == customer
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(request["body"], headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(created["secret"]).verify(request["body"].replace(b"w1", b"w2"), headers)

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED
    assert delivery.attempt_count == 1
    assert delivery.finished_at is not None
    [attempt] = delivery.attempts.all()
    assert (attempt.status_code, attempt.succeeded, attempt.response_excerpt) == (200, True, "ok")
    assert attempt.error == ""
    assert deliver().startswith("0 attempts")  # nothing is sent twice


@pytest.mark.django_db
def test_a_500_is_retried_on_the_schedule(scope_a, receiver):
    receiver.respond = lambda number, body: (500 if number == 0 else 200, b"oops", {}, 0)
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    before = timezone.now()
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDeliveryStatus.PENDING
    assert delivery.attempt_count == 1
    wait = delivery.next_attempt_at - before
    assert timedelta(seconds=5) <= wait < timedelta(seconds=7)
    [attempt] = delivery.attempts.all()
    assert (attempt.status_code, attempt.succeeded, attempt.response_excerpt) == (
        500,
        False,
        "oops",
    )
    assert deliver().startswith("0 attempts")  # not due yet
    make_due()
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED
    assert [a.status_code for a in delivery.attempts.order_by("attempted_at", "id")] == [500, 200]
    assert len(receiver.requests) == 2
    assert receiver.ids()[0] == receiver.ids()[1]  # the same message id: receivers dedupe by it


@pytest.mark.django_db
def test_after_the_last_retry_the_delivery_failed(scope_a, receiver):
    receiver.respond = lambda number, body: (503, b"down", {}, 0)
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    expected = [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    ]
    assert list(webhooks.RETRY_DELAYS) == expected
    for delay in expected:
        before = timezone.now()
        deliver()
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == WebhookDeliveryStatus.PENDING
        assert delay <= delivery.next_attempt_at - before < delay + timedelta(seconds=2)
        make_due()
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDeliveryStatus.FAILED
    assert delivery.attempt_count == 8
    assert WebhookAttempt.objects.filter(delivery=delivery, status_code=503).count() == 8
    make_due()
    assert deliver().startswith("0 attempts")
    assert len(receiver.requests) == 8


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_worker_sends_up_to_its_concurrency_at_a_time(scope_a, receiver, concurrency):
    """Slow receivers are waited for side by side, never more than ``--concurrency`` at once;
    each result is still recorded (on the worker's own thread)."""
    sending = Counter()
    lock = threading.Lock()

    def respond(number, body):
        with lock:
            sending["now"] += 1
            sending["most"] = max(sending["most"], sending["now"])
        time.sleep(0.2)
        with lock:
            sending["now"] -= 1
        return 200, b"", {}, 0

    receiver.respond = respond
    endpoint_for(scope_a.scope, receiver.url)
    events = change(scope_a.scope, 8)
    out = StringIO()
    call_command("deliver_webhooks", "--once", f"--concurrency={concurrency}", stdout=out)
    assert out.getvalue().startswith("8 attempts: 8 delivered")
    assert sending["most"] == concurrency
    assert sorted(receiver.ids()) == sorted(event.id for event in events)
    assert WebhookAttempt.objects.filter(succeeded=True).count() == 8
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.django_db
def test_a_result_whose_claim_was_taken_over_keeps_its_attempt_only(scope_a, receiver):
    """A lease ran out and another worker claimed the delivery: the late result is kept as
    an attempt, and the delivery is left to its new holder."""
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope, 2)
    held, deliveries = webhooks.deliveries_claim(limit=10)
    taken, kept = deliveries
    WebhookDelivery.objects.filter(pk=taken.pk).update(claim_token="another-worker")
    ok = webhooks.AttemptResult(200, 5, "ok", "")
    statuses = webhooks.attempts_record(claim=held, outcomes=[(taken, ok), (kept, ok)])
    assert statuses == ["lost", "succeeded"]
    taken.refresh_from_db()
    assert (taken.status, taken.claim_token, taken.attempt_count) == (
        "pending",
        "another-worker",
        0,
    )
    assert WebhookAttempt.objects.filter(delivery=taken, succeeded=True).count() == 1
    kept.refresh_from_db()
    assert (kept.status, kept.claim_token, kept.attempt_count) == ("succeeded", "", 1)


@pytest.mark.django_db
def test_a_batch_reads_its_events_by_key_once_per_claim(scope_a, receiver):
    """No join of the deliveries with the event table (whose plan went wrong when the
    statistics lagged a bulk load), and no query per delivery for its event or endpoint."""
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope, 45)
    with CaptureQueriesContext(connection) as queries:
        stats = webhooks.deliver_due(once=True, concurrency=4)
    assert stats.succeeded == 45
    statements = [query["sql"] for query in queries.captured_queries]
    event_reads = [sql for sql in statements if 'FROM "customers_customerevent"' in sql]
    claims = [sql for sql in statements if "claim_token" in sql and sql.startswith("UPDATE")]
    assert not [sql for sql in statements if 'JOIN "customers_customerevent"' in sql]
    assert 1 <= len(event_reads) <= 3  # 45 deliveries in claims of 20
    assert len([sql for sql in statements if 'FROM "customers_webhookendpoint"' in sql]) == len(
        event_reads
    )
    assert claims


@pytest.mark.django_db
def test_results_recorded_together_take_the_same_statements_however_many(scope_a, receiver):
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope, 12)
    held, deliveries = webhooks.deliveries_claim(limit=20)
    ok, failed = webhooks.AttemptResult(200, 5, "", ""), webhooks.AttemptResult(500, 5, "", "")

    def statements_to_record(outcomes) -> int:
        with CaptureQueriesContext(connection) as queries:
            webhooks.attempts_record(claim=held, outcomes=outcomes)
        return len(queries.captured_queries)

    two = statements_to_record([(deliveries[0], ok), (deliveries[1], failed)])
    ten = statements_to_record([(d, ok if n % 2 else failed) for n, d in enumerate(deliveries[2:])])
    assert ten == two
    statuses = dict(WebhookDelivery.objects.values_list("pk", "status"))
    assert sorted(statuses.values()).count("succeeded") == 6
    assert WebhookAttempt.objects.count() == 12


@pytest.mark.django_db
def test_a_concurrency_below_one_is_refused():
    with pytest.raises(CommandError, match="--concurrency must be at least 1"):
        call_command("deliver_webhooks", "--once", "--concurrency=0")


@pytest.mark.django_db
def test_a_slow_answer_is_a_timeout_and_retried(scope_a, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "DELIVERY_TIMEOUT_SECONDS", 0.3)
    receiver.respond = lambda number, body: (200, b"late", {}, 1.0 if number == 0 else 0)
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    started = time.monotonic()
    deliver()
    assert time.monotonic() - started < 1.0  # it did not wait for the answer
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDeliveryStatus.PENDING
    [attempt] = delivery.attempts.all()
    assert attempt.status_code is None
    assert attempt.error == "timed out after 0.3 s"
    assert 250 <= attempt.duration_ms < 1000
    make_due()
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED


@pytest.mark.django_db
def test_a_trickling_answer_is_cut_off_at_the_deadline(scope_a, monkeypatch):
    """The timeout bounds the whole exchange, not each read."""
    monkeypatch.setattr(webhooks, "DELIVERY_TIMEOUT_SECONDS", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        endpoint_for(scope_a.scope, f"http://127.0.0.1:{listener.getsockname()[1]}/")
        change(scope_a.scope)
        deliver()
    finally:
        stop.set()
        listener.close()
        thread.join(5)
    [attempt] = WebhookAttempt.objects.all()
    assert attempt.error == "timed out after 0.5 s"
    assert attempt.duration_ms < 2000


@pytest.mark.django_db
def test_the_first_kb_of_the_answer_is_kept(scope_a, receiver):
    receiver.respond = lambda number, body: (400, "é".encode() * 3000 + b"\x00", {}, 0)
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    deliver()
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code == 400
    assert attempt.response_excerpt == "é" * 512


@pytest.mark.django_db
def test_redirects_are_not_followed(scope_a, receiver):
    receiver.respond = lambda number, body: (
        (307, b"", {"Location": receiver.url + "/elsewhere"}, 0)
        if number == 0
        else (200, b"", {}, 0)
    )
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    deliver()
    assert len(receiver.requests) == 1
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.succeeded) == (307, False)
    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.PENDING


@pytest.mark.django_db
def test_an_unreachable_receiver_is_an_attempt_with_its_error(scope_a):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    endpoint_for(scope_a.scope, f"http://127.0.0.1:{port}/")
    change(scope_a.scope)
    deliver()
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert "ConnectionRefusedError" in attempt.error


@pytest.mark.django_db
def test_after_a_rotation_both_secrets_sign_for_24_hours(api, receiver):
    created = api.post(
        "/v1/webhook_endpoints", {"url": receiver.url, "enabled_events": ["*"]}, format="json"
    ).json()
    old_secret = created["secret"]
    new_secret = api.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret").json()["secret"]
    api.post("/v1/customers", {"external_id": "r1", "name": "Rotated"}, format="json")
    deliver()
    [request] = receiver.requests
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret):
        Webhook(secret).verify(request["body"], request["headers"])

    # 24 hours later the old secret no longer signs.
    WebhookEndpoint.objects.filter(pk=created["id"]).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    api.post("/v1/customers", {"external_id": "r2", "name": "Later"}, format="json")
    deliver()
    later = receiver.requests[1]
    assert len(later["headers"]["webhook-signature"].split(" ")) == 1
    Webhook(new_secret).verify(later["body"], later["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(later["body"], later["headers"])


@pytest.mark.django_db
def test_at_delivery_a_private_address_is_refused_when_not_allowed(
    scope_a, receiver, settings, monkeypatch
):
    endpoint_for(scope_a.scope, receiver.url)  # saved while private URLs were allowed
    endpoint_for(scope_a.scope, "https://hooks.example.com/crm")
    change(scope_a.scope)
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        # The name was public when saved; now it resolves to the loopback interface.
        return real("127.0.0.1" if host == "hooks.example.com" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    deliver()
    assert receiver.requests == []
    errors = sorted(WebhookAttempt.objects.values_list("error", flat=True))
    assert errors == [
        "refused: the URL host 'hooks.example.com' resolves to 127.0.0.1, which is not a public"
        " address",
        "refused: the URL must be an https:// URL",
    ]


@pytest.mark.django_db
def test_a_disabled_endpoint_is_not_sent_what_was_pending(scope_a, receiver):
    endpoint = endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    deliver()
    assert receiver.requests == []
    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.CANCELED
    assert not WebhookAttempt.objects.exists()


@pytest.mark.django_db
def test_an_erasure_reaches_the_bodies_not_yet_sent(api, receiver):
    api.post("/v1/webhook_endpoints", {"url": receiver.url, "enabled_events": ["*"]}, format="json")
    customer = api.post(
        "/v1/customers",
        {"external_id": "x1", "name": "Ada Secretname", "email": "ada@private.example"},
        format="json",
    ).json()
    assert api.post(f"/v1/customers/{customer['id']}/erase").status_code == 200
    deliver()
    assert len(receiver.requests) == 2  # created, erased
    for request in receiver.requests:
        assert b"Secretname" not in request["body"]
        assert b"ada@private" not in request["body"]


@pytest.mark.django_db
def test_a_host_name_is_resolved_once_and_connected_to_as_checked(scope_a, receiver, monkeypatch):
    port = receiver.server.server_address[1]
    endpoint_for(scope_a.scope, f"http://receiver.example.com:{port}/in")
    change(scope_a.scope)
    real = socket.getaddrinfo
    asked = []

    def resolve(host, *args, **kwargs):
        asked.append(host)
        return real("127.0.0.1" if host == "receiver.example.com" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    deliver()
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"receiver.example.com:{port}"
    assert request["path"] == "/in"
    assert asked.count("receiver.example.com") == 1  # the connection went to that answer


@pytest.mark.django_db
def test_an_unexpected_error_is_an_attempt_and_the_worker_goes_on(scope_a, receiver, monkeypatch):
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope, 2)
    real = webhooks.delivery_body
    calls = []

    def broken_once(event):
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(event)

    monkeypatch.setattr(webhooks, "delivery_body", broken_once)
    deliver()
    statuses = sorted(WebhookDelivery.objects.values_list("status", flat=True))
    assert statuses == ["pending", "succeeded"]
    assert WebhookAttempt.objects.filter(error="internal error: RuntimeError").count() == 1


@pytest.mark.django_db
def test_purging_events_deletes_their_deliveries_and_attempts(scope_a, receiver):
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    deliver()
    assert WebhookAttempt.objects.count() == 1
    CustomerEvent.objects.update(created_at=timezone.now() - timedelta(days=40))
    call_command("purge_events", "--older-than-days", "30", stdout=StringIO())
    assert not CustomerEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert not WebhookAttempt.objects.exists()


@pytest.mark.django_db
def test_a_failed_delivery_can_be_resent_once(scope_a, scope_b, receiver):
    receiver.respond = lambda number, body: (500, b"", {}, 0)
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope)
    WebhookDelivery.objects.update(attempt_count=8, status=WebhookDeliveryStatus.FAILED)
    delivery = WebhookDelivery.objects.get()
    with pytest.raises(webhooks.WebhookEndpointNotFoundError):
        webhooks.webhook_delivery_resend(scope=scope_b.scope, delivery_id=delivery.pk)
    webhooks.webhook_delivery_resend(scope=scope_a.scope, delivery_id=delivery.pk)
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.FAILED  # one more attempt, failed again
    assert len(receiver.requests) == 1
    receiver.respond = lambda number, body: (200, b"", {}, 0)
    webhooks.webhook_delivery_resend(scope=scope_a.scope, delivery_id=delivery.pk)
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED
    assert delivery.attempts.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_claim_reads_the_partial_due_index():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = webhooks.due_deliveries(now=timezone.now())[:20].explain()
    assert "webhook_delivery_due" in plan, plan


# --- several workers, killed workers (PostgreSQL) -----------------------------------------------


def database_url() -> str:
    database = connection.settings_dict
    return (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


def worker(*args: str, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
        "DATABASE_URL": database_url(),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "deliver_webhooks", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=WAIT_SECONDS)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_send_each_delivery_once(scope_a, receiver):
    receiver.respond = lambda number, body: (200, b"", {}, 0.002)
    endpoint_for(scope_a.scope, receiver.url)
    endpoint_for(scope_a.scope, receiver.url.replace("/crm", "/second"))
    events = change(scope_a.scope, 60)
    results = run_together(4, lambda index: webhooks.deliver_due(once=True))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(stats.attempts for stats in results) == 120
    assert sum(1 for stats in results if stats.attempts) >= 2, "the workers shared the work"
    sent = Counter((r["path"], r["headers"]["webhook-id"]) for r in receiver.requests)
    assert len(sent) == 120
    assert set(sent.values()) == {1}
    assert {event_id for _, event_id in sent} == {event.id for event in events}
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}
    assert WebhookAttempt.objects.count() == 120


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing(scope_a, receiver):
    receiver.respond = lambda number, body: (200, b"", {}, 0.05)
    endpoint_for(scope_a.scope, receiver.url)
    events = change(scope_a.scope, 50)
    lease = 3
    first = worker(WEBHOOKS_LEASE_SECONDS=str(lease))
    try:
        receiver.wait_for(5)
        deadline = time.monotonic() + WAIT_SECONDS
        while not WebhookDelivery.objects.filter(status="succeeded").exists():
            assert time.monotonic() < deadline, "the worker recorded no result"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(WAIT_SECONDS)
    finally:
        stopped(first)
    killed_at = time.monotonic()
    pending = WebhookDelivery.objects.filter(status="pending")
    held = set(pending.exclude(claim_token="").values_list("id", flat=True))
    assert held, "the worker died holding claims"
    assert pending.count() < 50

    # Before the lease ends nobody takes what the dead worker held (the rest, yes); once it
    # has ended another worker does.
    deliver()
    assert set(pending.values_list("id", flat=True)) == held
    time.sleep(max(0, lease + 0.5 - (time.monotonic() - killed_at)))
    second = worker("--once")
    try:
        _, errors = second.communicate(timeout=WAIT_SECONDS)
    finally:
        stopped(second)
    assert second.returncode == 0, errors
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}
    assert set(receiver.ids()) == {event.id for event in events}  # at least once each


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigterm_finishes_the_attempts_in_hand_then_stops(scope_a, receiver):
    receiver.respond = lambda number, body: (200, b"", {}, 1.0)
    endpoint_for(scope_a.scope, receiver.url)
    change(scope_a.scope, 5)
    process = worker("--concurrency", "2")
    try:
        receiver.wait_for(2)
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=WAIT_SECONDS)
    finally:
        stopped(process)
    assert process.returncode == 0, errors
    assert "2 attempts: 2 delivered" in output
    assert len(receiver.requests) == 2
    assert WebhookDelivery.objects.filter(status="succeeded").count() == 2
    # What it had claimed and not tried is due again at once, for the next worker.
    pending = WebhookDelivery.objects.filter(status="pending")
    assert pending.count() == 3
    assert not pending.exclude(claim_token="").exists()
    assert not pending.filter(next_attempt_at__gt=timezone.now()).exists()
