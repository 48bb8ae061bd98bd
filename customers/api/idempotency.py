"""`Idempotency-Key` on POST, PUT, PATCH and DELETE.

Keys are per scope and live 24 hours. The same key with the same method, path (with its
query) and JSON body (compared after parsing) replays the first response's status and body
and writes nothing;
the same key with anything else is a 409. The record is inserted in the same transaction as
the write: a concurrent request with the key waits on the unique index until the first one
commits, then replays it (or, if the first rolled back, does the write itself).
"""

import functools
import hashlib
import json
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.errors import AlreadyExistsError, ApiValidationError
from customers.db_router import scope_written
from customers.models import IdempotencyRecord
from customers.scope import Scope
from customers.text import text_problem

HEADER = "Idempotency-Key"
LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"


def idempotency_conflict() -> AlreadyExistsError:
    return AlreadyExistsError(
        "Idempotency-Key was already used with a different request (method, path or body)",
        {HEADER: ["was already used with a different request"]},
    )


def request_fingerprint(request: Request) -> str:
    body = request.data or None
    canonical = json.dumps(
        # The path with its query: `PUT /v1/customers?id=...` names its customer there.
        {"method": request.method, "path": request.get_full_path(), "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApiValidationError({HEADER: [f"must be 1 to {MAX_KEY_LENGTH} characters"]})
    problem = text_problem(key)
    if problem:
        raise ApiValidationError({HEADER: [problem]})
    return key


def claim(*, scope: Scope, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """The earlier record for this key (unexpired), or None once this request owns the key."""
    records = scope.confine(IdempotencyRecord.objects.all()).filter(key=key)
    records.filter(created_at__lt=timezone.now() - LIFETIME).delete()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(
                tenant_id=scope.tenant_id,
                environment_id=scope.environment_id,
                key=key,
                request_fingerprint=fingerprint,
                response_status=0,
            )
    except IntegrityError:
        return records.get()
    return None


def purge_expired_idempotency_records() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - LIFETIME).delete()
    return deleted


def idempotent(handler):
    """Wrap a DRF write handler so that an `Idempotency-Key` makes it safe to retry."""

    @functools.wraps(handler)
    def wrapper(view, request: Request, *args, **kwargs):
        try:
            return keyed(view, request, *args, **kwargs)
        finally:
            # Every API write passes here: once it has committed, the scope's reads go to
            # the primary for a few seconds (read-your-writes; nothing without replicas).
            scope = getattr(request, "scope", None)
            if scope is not None:
                scope_written(scope)

    def keyed(view, request: Request, *args, **kwargs):
        key = read_key(request)
        if key is None:
            return handler(view, request, *args, **kwargs)
        scope: Scope = request.scope
        fingerprint = request_fingerprint(request)
        with transaction.atomic():
            earlier = claim(scope=scope, key=key, fingerprint=fingerprint)
            if earlier is not None:
                if earlier.request_fingerprint != fingerprint:
                    raise idempotency_conflict()
                response = Response(earlier.response_body, status=earlier.response_status)
                response[REPLAYED_HEADER] = "true"
                return response
            try:
                response = handler(view, request, *args, **kwargs)
            except exceptions.APIException as error:
                # A refused request (400, 404, 409) is an answer too: it is kept and replayed.
                response = view.handle_exception(error)
            if response.status_code >= 500:
                transaction.set_rollback(True)
                return response
            scope.confine(IdempotencyRecord.objects.all()).filter(key=key).update(
                response_status=response.status_code, response_body=response.data
            )
            return response

    return wrapper
