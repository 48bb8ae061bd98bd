"""API-key authentication: `Authorization: Bearer <key>` or `x-api-key: <key>` -> one scope."""

import functools
import re
from datetime import timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from customers.models import ApiKey, hash_api_key

KEY_PATTERN = re.compile(r"sk_[A-Za-z0-9_-]{32,200}")
LAST_USED_RESOLUTION = timedelta(minutes=1)
KEY_FIELDS = ("id", "tenant_id", "environment_id", "prefix", "last_used_at", "revoked_at")


class ApiKeyPrincipal:
    """The caller of a key-authenticated request (DRF wants a user-like object)."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"


def raw_key_from_headers(request) -> str | None:
    """The key the request carries, '' when a credential header is malformed, None when absent."""
    authorization = request.META.get("HTTP_AUTHORIZATION")
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return ""
        return credentials.strip()
    header_key = request.META.get("HTTP_X_API_KEY")
    if header_key is not None:
        return header_key.strip()
    return None


@functools.cache
def key_lookup_sql() -> str:
    # key_hash is unique: no ORDER BY, and only the columns a request needs. Plain SQL,
    # written once: this runs on every API request, and compiling the ORM query for it
    # cost more than running it.
    fields = [ApiKey._meta.get_field(attname) for attname in KEY_FIELDS]
    quote = connection.ops.quote_name
    return (
        f"SELECT {', '.join(quote(field.column) for field in fields)}"  # noqa: S608 (model names only)
        f" FROM {quote(ApiKey._meta.db_table)}"
        f" WHERE {quote(ApiKey._meta.get_field('key_hash').column)} = %s"
    )


def api_key_by_hash(key_hash: str) -> ApiKey | None:
    # Django's raw() converts each value as the ORM does (SQLite's naive timestamps made
    # aware) and loads only these fields, as .only() would.
    return next(iter(ApiKey.objects.raw(key_lookup_sql(), [key_hash])), None)


def touch_last_used(api_key: ApiKey) -> None:
    """Record use at most once a minute, so reads do not become writes on every request."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw_key = raw_key_from_headers(request)
        if raw_key is None:
            return None
        if not KEY_PATTERN.fullmatch(raw_key):
            raise exceptions.AuthenticationFailed("the API key is malformed")
        api_key = api_key_by_hash(hash_api_key(raw_key))
        if api_key is None:
            raise exceptions.AuthenticationFailed("the API key is not valid")
        if api_key.is_revoked:
            raise exceptions.AuthenticationFailed("the API key has been revoked")
        touch_last_used(api_key)
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
