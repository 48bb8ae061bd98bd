"""The event log: who changed which customer, how, and when.

``customers.services`` records an event for every change it makes, in the same transaction
(a rolled-back change records nothing, a write that changes nothing records nothing). Each
entry point says who acts: an API key, a staff user, or a command.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from customers.bulk import bulk_insert
from customers.ids import new_event_id
from customers.models import (
    ActorType,
    ApiKey,
    Customer,
    CustomerEvent,
    CustomerEventType,
    CustomerStatus,
)
from customers.representation import API_FIELD_OF_ATTRIBUTE, api_value, customer_as_dict
from customers.request_id import request_id_for
from customers.scope import Scope
from customers.webhooks import (
    event_with_deliveries_insert,
    subscribed_endpoint_ids,
    webhook_deliveries_create_bulk,
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: ``type`` is an ActorType, ``id`` the key prefix, username or
    command name; ``request_id`` the request's X-Request-ID (None outside a request)."""

    type: str
    id: str
    request_id: str | None = None

    @classmethod
    def api_key(cls, prefix: str, *, request_id: str | None = None) -> "Actor":
        return cls(ActorType.API_KEY, prefix, request_id)

    @classmethod
    def user(cls, username: str, *, request_id: str | None = None) -> "Actor":
        return cls(ActorType.USER, username, request_id)

    @classmethod
    def command(cls, name: str) -> "Actor":
        return cls(ActorType.COMMAND, name)

    def __str__(self) -> str:
        return f"{ActorType(self.type).label} {self.id}"


def actor_for_request(request) -> Actor:
    """Who acts in a request: its API key (DRF puts the key in ``auth``), else the user."""
    request_id = request_id_for(request)
    api_key = getattr(request, "auth", None)
    if isinstance(api_key, ApiKey):
        return Actor.api_key(api_key.prefix, request_id=request_id)
    return Actor.user(request.user.get_username(), request_id=request_id)


def event_type_for_change(*, previous_status: str | None, status: str) -> str:
    if previous_status is None:
        return CustomerEventType.CREATED
    if status != previous_status and status == CustomerStatus.ARCHIVED:
        return CustomerEventType.ARCHIVED
    if status != previous_status and previous_status == CustomerStatus.ARCHIVED:
        return CustomerEventType.RESTORED
    return CustomerEventType.UPDATED


def customer_event_record(
    *,
    customer: Customer,
    actor: Actor,
    previous: Mapping[str, Any] | None,
    event_type: str | None = None,
) -> CustomerEvent:
    """Record the change that made ``customer`` what it is now.

    ``previous`` maps each changed model attribute to its old value (None for a creation,
    or for an erasure, whose event holds no personal value). Call it inside the change's
    transaction.
    """
    previous_attributes = {
        API_FIELD_OF_ATTRIBUTE.get(attribute, attribute): api_value(attribute, value)
        for attribute, value in (previous or {}).items()
    }
    event_type = event_type or event_type_for_change(
        previous_status=None if previous is None else previous.get("status", customer.status),
        status=customer.status,
    )
    event = CustomerEvent(
        tenant_id=customer.tenant_id,
        environment_id=customer.environment_id,
        customer_id=customer.pk,
        type=event_type,
        created_at=customer.updated_at,
        actor_type=actor.type,
        actor_id=actor.id,
        request_id=actor.request_id,
        data={"object": customer_as_dict(customer), "previous_attributes": previous_attributes},
    )
    # With its webhook deliveries, in the same transaction (sent later by deliver_webhooks).
    event_with_deliveries_insert(event)
    return event


# What bulk_insert writes for an event, in order.
EVENT_ATTRIBUTES = (
    "id",
    "tenant_id",
    "environment_id",
    "customer_id",
    "type",
    "created_at",
    "actor_type",
    "actor_id",
    "request_id",
    "data",
)


def customer_created_events_record(
    *, customers: Iterable[dict[str, Any]], scope: Scope, actor: Actor
) -> int:
    """A ``customer.created`` event for each customer (API objects), inserted in bulk in the
    caller's transaction (an import's: COPY on PostgreSQL, not an INSERT per row), and their
    webhook deliveries after them, in bulk too."""
    now = timezone.now()
    endpoint_ids = subscribed_endpoint_ids(scope=scope, event_type=CustomerEventType.CREATED)
    event_ids: list[str] = []  # only when endpoints subscribe (a batch of the import's)

    def event_id() -> str:
        new_id = new_event_id()
        if endpoint_ids:
            event_ids.append(new_id)
        return new_id

    rows = (
        (
            event_id(),
            scope.tenant_id,
            scope.environment_id,
            customer["id"],
            CustomerEventType.CREATED.value,
            now,
            actor.type,
            actor.id,
            actor.request_id,
            {"object": customer, "previous_attributes": {}},
        )
        for customer in customers
    )
    inserted = bulk_insert(CustomerEvent, EVENT_ATTRIBUTES, rows)
    if event_ids:
        webhook_deliveries_create_bulk(event_ids=event_ids, endpoint_ids=endpoint_ids)
    return inserted


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    before: Any
    after: Any

    @property
    def before_text(self) -> str:
        return value_text(self.before)

    @property
    def after_text(self) -> str:
        return value_text(self.after)


def value_text(value: Any) -> str:
    """A value as a person reads it in a history: JSON (null, "text", {"k": "v"})."""
    return json.dumps(value, ensure_ascii=False)


def event_changes(event: CustomerEvent) -> list[FieldChange]:
    """What an event changed, field by field, in the contract's field order."""
    previous = event.data.get("previous_attributes") or {}
    after = event.data.get("object") or {}
    return [
        FieldChange(field, previous[field], after.get(field))
        for field in after
        if field in previous
    ]


def event_actor(event: CustomerEvent) -> Actor:
    return Actor(event.actor_type, event.actor_id, event.request_id)


def customer_events_scrub(*, customer: Customer, erased: Mapping[str, Any]) -> int:
    """Replace ``erased``'s fields (API names -> erased values) in every stored event of the
    customer: in the object after each change and in the previous values. Returns how many
    events changed."""
    changed = []
    events = customer.scope.confine(CustomerEvent.objects.all()).filter(customer_id=customer.pk)
    for event in events.only("id", "data").iterator(chunk_size=1000):
        data = event.data or {}
        scrubbed = {
            "object": {**(data.get("object") or {}), **erased} if data.get("object") else {},
            "previous_attributes": {
                name: erased.get(name, value)
                for name, value in (data.get("previous_attributes") or {}).items()
            },
        }
        if scrubbed != data:
            event.data = scrubbed
            changed.append(event)
    CustomerEvent.objects.bulk_update(changed, ["data"], batch_size=500)
    return len(changed)
