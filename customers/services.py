"""Writes. Every change to tenants, keys, staff and customers goes through these functions.

Keyword-only, named ``<entity>_<action>``; commands, the admin and the API call them, so
each entry point enforces the same rules.
"""

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers.counts import customer_counts_add
from customers.events import Actor, customer_event_record, customer_events_scrub
from customers.ids import new_api_key_secret
from customers.models import (
    ApiKey,
    Customer,
    CustomerEvent,
    CustomerEventType,
    CustomerStatus,
    Environment,
    IdempotencyRecord,
    ImportJob,
    Membership,
    Tenant,
    hash_api_key,
)
from customers.representation import customer_as_dict
from customers.scope import Scope
from customers.selectors import customer_get, customers_in_scope, live_external_id_taken
from customers.shape import EDITABLE_FIELDS
from customers.text import abbreviated
from customers.validation import CustomerValidationError, clean_customer_fields
from customers.webhooks import webhook_responses_scrub

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
OPERATORS_GROUP = "Customer operators"
# Operators view, add and change customers (archiving is their delete, so no hard delete),
# and manage their tenants' webhook endpoints.
OPERATOR_PERMISSIONS = (
    "view_customer",
    "add_customer",
    "change_customer",
    "view_webhookendpoint",
    "add_webhookendpoint",
    "change_webhookendpoint",
    "delete_webhookendpoint",
    # Saved views are made from the customer list; these are their own pages (rename,
    # share, delete: only the owner's, as customers/saved_views.py checks).
    "view_savedview",
    "change_savedview",
    "delete_savedview",
)


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


# --- Customers -----------------------------------------------------------------------------


class CustomerConflictError(ServiceError):
    """Another non-archived customer of the scope has the external id."""


def parent_problem(*, scope: Scope, customer_id: str | None, parent_id: str) -> str | None:
    """Why ``parent_id`` cannot be the parent of ``customer_id``, or None when it can.

    The parent must be a non-archived customer of the same scope, and never the customer
    itself or one of its descendants (the whole ancestor chain is walked, so no cycle forms).
    """
    if parent_id == customer_id:
        return "must not be the customer itself"
    parent = customers_in_scope(scope=scope).filter(pk=parent_id).values("status").first()
    if parent is None:
        return "must be an existing customer of the same tenant and environment"
    if parent["status"] == CustomerStatus.ARCHIVED:
        return "must not be an archived customer"
    if customer_id is None:
        return None
    ancestor_id, seen = parent_id, set()
    while ancestor_id is not None and ancestor_id not in seen:
        if ancestor_id == customer_id:
            return "must not be one of the customer's descendants"
        seen.add(ancestor_id)
        ancestor_id = (
            customers_in_scope(scope=scope)
            .filter(pk=ancestor_id)
            .values_list("parent_id", flat=True)
            .first()
        )
    return None


def lock_hierarchy(*, scope: Scope) -> None:
    """Serialise parent changes within a scope, so two concurrent moves cannot close a cycle.

    Parent changes are rare; a transaction-level advisory lock costs nothing elsewhere.
    SQLite runs one writer at a time already.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"hierarchy:{scope}"])


# A live customer of the environment has this external id: the API's 409 names the field and
# the value; the admin form says it under the field ("this external id", see forms.py).
EXTERNAL_ID_TAKEN = "a customer with {external_id} already exists in this environment"


def conflict_for(external_id: str) -> CustomerConflictError:
    return CustomerConflictError(
        EXTERNAL_ID_TAKEN.format(external_id=f"external_id {abbreviated(external_id)!r}")
    )


def save_customer(*, customer: Customer, update_fields: list[str] | None = None) -> None:
    """Save, letting the database's partial unique index decide races on external ids."""
    try:
        with transaction.atomic():
            customer.save(force_insert=update_fields is None, update_fields=update_fields)
    except IntegrityError:
        if customer.status != CustomerStatus.ARCHIVED and live_external_id_taken(
            scope=customer.scope, external_id=customer.external_id, exclude_id=customer.pk
        ):
            raise conflict_for(customer.external_id) from None
        raise


def check_parent(*, scope: Scope, customer_id: str | None, parent_id: str | None) -> None:
    if parent_id is None:
        return
    lock_hierarchy(scope=scope)
    problem = parent_problem(scope=scope, customer_id=customer_id, parent_id=parent_id)
    if problem:
        raise CustomerValidationError({"parent_customer_id": [problem]})


@transaction.atomic
def customer_create(*, scope: Scope, data: Mapping[str, Any], actor: Actor) -> Customer:
    """A new customer of ``scope`` from API field names; ``status`` defaults to published.

    Records its ``customer.created`` event, by ``actor``, in the same transaction."""
    cleaned = clean_customer_fields(data, fields=EDITABLE_FIELDS)
    parent_id = cleaned.pop("parent_customer_id", None)
    check_parent(scope=scope, customer_id=None, parent_id=parent_id)
    now = timezone.now()
    customer = Customer(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        parent_id=parent_id,
        created_at=now,
        updated_at=now,
        **cleaned,
    )
    if customer.status != CustomerStatus.ARCHIVED and live_external_id_taken(
        scope=scope, external_id=customer.external_id, exclude_id=None
    ):
        raise conflict_for(customer.external_id)
    save_customer(customer=customer)
    customer_counts_add(scope=scope, deltas={customer.status: 1})
    customer_event_record(customer=customer, actor=actor, previous=None)
    return customer


@transaction.atomic
def customer_update(
    *, scope: Scope, customer_id: str, data: Mapping[str, Any], actor: Actor
) -> Customer:
    """Change only the fields given (``metadata`` is replaced whole); ``updated_at`` moves.

    A change records its event (updated, archived or restored) by ``actor``; a call that
    changes nothing records nothing."""
    cleaned = clean_customer_fields(data, partial=True, fields=EDITABLE_FIELDS)
    if "parent_customer_id" in cleaned:
        # Before the row lock: every parent change takes the two locks in the same order.
        lock_hierarchy(scope=scope)
    customer = customer_get(scope=scope, customer_id=customer_id, for_update=True)
    if "parent_customer_id" in cleaned:
        parent_id = cleaned.pop("parent_customer_id")
        if parent_id != customer.parent_id:
            check_parent(scope=scope, customer_id=customer.pk, parent_id=parent_id)
        cleaned["parent_id"] = parent_id
    changed = [field for field, value in cleaned.items() if getattr(customer, field) != value]
    if not changed:
        return customer
    previous = {field: getattr(customer, field) for field in changed}
    previous_status = customer.status
    for field in changed:
        setattr(customer, field, cleaned[field])
    becomes_live = customer.status != CustomerStatus.ARCHIVED and (
        "external_id" in changed or "status" in changed
    )
    if becomes_live and live_external_id_taken(
        scope=scope, external_id=customer.external_id, exclude_id=customer.pk
    ):
        raise conflict_for(customer.external_id)
    customer.updated_at = timezone.now()
    save_customer(customer=customer, update_fields=[*changed, "updated_at"])
    if customer.status != previous_status:
        customer_counts_add(scope=scope, deltas={previous_status: -1, customer.status: 1})
    customer_event_record(customer=customer, actor=actor, previous=previous)
    return customer


def customer_archive(*, scope: Scope, customer_id: str, actor: Actor) -> Customer:
    """The delete: status becomes archived. Archiving an archived customer changes nothing."""
    return customer_update(
        scope=scope,
        customer_id=customer_id,
        data={"status": CustomerStatus.ARCHIVED},
        actor=actor,
    )


def customer_restore(*, scope: Scope, customer_id: str, actor: Actor) -> Customer:
    """Undo an archive: the customer is published again (409 if its external id is taken)."""
    return customer_update(
        scope=scope,
        customer_id=customer_id,
        data={"status": CustomerStatus.PUBLISHED},
        actor=actor,
    )


# Erasure (a data-protection request): the personal fields get these values; id and
# external_id stay, so that the customer's own systems can still match the record.
ERASED_NAME = "[erased]"
ERASED_TEXT_FIELDS = (
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
)


def erased_values(customer: Customer) -> dict[str, Any]:
    """The personal fields' erased values (model attributes = API names here); metadata
    keeps its keys, its values are emptied."""
    return {
        "name": ERASED_NAME,
        "email": None,
        **dict.fromkeys(ERASED_TEXT_FIELDS, ""),
        "metadata": dict.fromkeys(customer.metadata or {}, ""),
    }


def personal_values(customer: Customer) -> list[str]:
    """The customer's personal values as they are now (before an erasure), longest first;
    values shorter than 3 characters are left out (replacing them would mangle other text)."""
    values = [
        customer.name,
        customer.email or "",
        *(getattr(customer, field) for field in ERASED_TEXT_FIELDS),
        *(value for value in (customer.metadata or {}).values() if isinstance(value, str)),
    ]
    return sorted({value for value in values if len(value) >= 3}, key=len, reverse=True)


def import_jobs_scrub(*, customer: Customer, erased: Mapping[str, Any]) -> int:
    """Erasure, in the admin imports' kept findings: the preview rows (the first rows as
    they would be stored) that show the customer, by id or external id, get the erased
    values; a problem's message that quotes one of its personal values (an invalid email,
    say) has it replaced. Returns how many imports changed."""
    values = personal_values(customer)
    changed = []
    jobs = customer.scope.confine(ImportJob.objects.all()).only("id", "preview", "problems")
    for job in jobs.exclude(preview=[], problems=[]).iterator(chunk_size=100):
        rows = []
        for row in job.preview:
            if row.get("id") == customer.pk or row.get("external_id") == customer.external_id:
                metadata = dict.fromkeys(row.get("metadata") or {}, "")
                row = {**row, **{k: v for k, v in erased.items() if k in row}, "metadata": metadata}
            rows.append(row)
        problems = []
        for problem in job.problems:
            message = problem.get("message", "")
            for value in values:
                message = message.replace(value, ERASED_NAME)
            problems.append({**problem, "message": message} if "message" in problem else problem)
        if rows != job.preview or problems != job.problems:
            job.preview, job.problems = rows, problems
            changed.append(job)
    ImportJob.objects.bulk_update(changed, ["preview", "problems"], batch_size=100)
    return len(changed)


@transaction.atomic
def customer_erase(*, scope: Scope, customer_id: str, actor: Actor) -> Customer:
    """Erase the customer's personal data, here and in every stored copy (its events, the
    idempotency records that replay it, what webhook receivers answered to its deliveries,
    the admin's change log and imports' findings), and archive it; record `customer.erased`,
    which holds no personal value. Erasing an erased customer changes nothing."""
    customer = customer_get(scope=scope, customer_id=customer_id, for_update=True)
    erased = erased_values(customer)
    customer_events_scrub(customer=customer, erased=erased)
    webhook_responses_scrub(customer=customer, placeholder=ERASED_NAME)
    import_jobs_scrub(customer=customer, erased=erased)
    changed = [field for field, value in erased.items() if getattr(customer, field) != value]
    if not changed and customer.status == CustomerStatus.ARCHIVED:
        return customer
    previous_status = customer.status
    for field, value in erased.items():
        setattr(customer, field, value)
    customer.status = CustomerStatus.ARCHIVED
    customer.updated_at = timezone.now()
    customer.save(update_fields=[*erased, "status", "updated_at"])
    if previous_status != customer.status:
        customer_counts_add(scope=scope, deltas={previous_status: -1, customer.status: 1})
    replayed = scope.confine(IdempotencyRecord.objects.all()).filter(response_body__id=customer.pk)
    replayed.update(response_body=customer_as_dict(customer))
    # The admin's own change log names the customer as it was (its name, in object_repr).
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk
    ).update(object_repr=str(customer))
    customer_event_record(
        customer=customer, actor=actor, previous=None, event_type=CustomerEventType.ERASED
    )
    return customer


def events_purge(*, older_than_days: int, batch_size: int = 10_000) -> int:
    """Delete the events older than ``older_than_days`` days, a batch at a time (short
    transactions on a large log); returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        ids = list(
            CustomerEvent.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return deleted
        CustomerEvent.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
