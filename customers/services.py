"""Writes. Every change to tenants, keys, staff and customers goes through these functions.

Keyword-only, named ``<entity>_<action>``; commands, the admin and the API call them, so
each entry point enforces the same rules.
"""

import re
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from customers.ids import new_api_key_secret
from customers.models import ApiKey, Environment, Membership, Tenant, hash_api_key

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
OPERATORS_GROUP = "Customer operators"
# Operators view, add and change customers; archiving is their delete, so no hard delete.
OPERATOR_PERMISSIONS = ("view_customer", "add_customer", "change_customer")


class ServiceError(Exception):
    """A write refused for a reason the caller should show as it is."""


def check_identifier(kind: str, value: str) -> None:
    if not IDENTIFIER_PATTERN.fullmatch(value or ""):
        raise ServiceError(f"{kind} id {value!r} must be 1 to 64 letters, digits, '_' or '-'")


def tenant_ensure(*, tenant_id: str) -> Tenant:
    check_identifier("tenant", tenant_id)
    tenant, _ = Tenant.objects.get_or_create(id=tenant_id, defaults={"name": tenant_id})
    return tenant


@transaction.atomic
def environment_ensure(*, tenant_id: str, environment_id: str) -> Environment:
    """The environment, created with its tenant if missing. Environment ids are global."""
    check_identifier("environment", environment_id)
    tenant = tenant_ensure(tenant_id=tenant_id)
    environment, _ = Environment.objects.get_or_create(
        id=environment_id, defaults={"tenant": tenant, "name": environment_id}
    )
    if environment.tenant_id != tenant.id:
        raise ServiceError(
            f"environment {environment_id!r} belongs to tenant {environment.tenant_id!r},"
            f" not {tenant_id!r}"
        )
    return environment


def api_key_create(
    *, environment: Environment, name: str = "", raw_key: str | None = None
) -> tuple[ApiKey, str]:
    """A new key for the environment's scope; returns it with the raw key (shown once)."""
    for _ in range(5):
        candidate = raw_key or f"sk_{new_api_key_secret()}"
        prefix = candidate[: ApiKey.PREFIX_LENGTH]
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
        if raw_key:
            raise ServiceError(f"a key with prefix {prefix!r} exists already")
    else:
        raise ServiceError("could not find a free key prefix")
    api_key = ApiKey.objects.create(
        tenant_id=environment.tenant_id,
        environment=environment,
        name=name,
        prefix=prefix,
        key_hash=hash_api_key(candidate),
    )
    return api_key, candidate


def api_key_revoke(*, prefix: str) -> ApiKey:
    api_key = ApiKey.objects.filter(prefix=prefix).first()
    if api_key is None:
        raise ServiceError(f"no API key has the prefix {prefix!r}")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def operators_group() -> Group:
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    permissions = Permission.objects.filter(
        content_type__app_label="customers", codename__in=OPERATOR_PERMISSIONS
    )
    group.permissions.set(permissions)
    return group


@transaction.atomic
def staff_user_upsert(*, username: str, password: str, tenant_ids: Iterable[str]):
    """Create or update a staff user whose memberships become exactly ``tenant_ids``."""
    tenant_ids = list(dict.fromkeys(tenant_ids))
    if not tenant_ids:
        raise ServiceError("a staff user needs at least one tenant")
    tenants = [tenant_ensure(tenant_id=tenant_id) for tenant_id in tenant_ids]
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    user.is_staff = True
    user.is_active = True
    user.set_password(password)
    user.save()
    user.groups.add(operators_group())
    Membership.objects.filter(user=user).exclude(tenant__in=tenants).delete()
    for tenant in tenants:
        Membership.objects.get_or_create(user=user, tenant=tenant)
    return user
