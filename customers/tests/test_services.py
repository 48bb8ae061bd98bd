"""The write path on its own: each service's rules, counts and events, without HTTP."""

import pytest

from customers.events import Actor
from customers.models import CustomerEvent, CustomerStatusCount
from customers.services import (
    CustomerConflictError,
    customer_archive,
    customer_create,
    customer_restore,
    customer_update,
)
from customers.tests.factories import make_customer
from customers.validation import CustomerValidationError

pytestmark = pytest.mark.django_db

ACTOR = Actor.command("test_services")


def counts(scope) -> dict[str, int]:
    rows = scope.confine(CustomerStatusCount.objects.all())
    return {row.status: row.count for row in rows if row.count}


def test_create_normalises_and_counts(scope_a):
    customer = customer_create(
        scope=scope_a.scope,
        data={"external_id": "e1", "name": "N", "address_country": "fr", "metadata": {"k": "v"}},
        actor=ACTOR,
    )
    assert (customer.address_country, customer.status, customer.metadata) == (
        "FR",
        "published",
        {"k": "v"},
    )
    assert customer.created_at == customer.updated_at
    assert counts(scope_a.scope) == {"published": 1}


def test_create_refuses_server_owned_fields(scope_a):
    with pytest.raises(CustomerValidationError) as caught:
        customer_create(
            scope=scope_a.scope, data={"external_id": "e", "name": "N", "id": "x"}, actor=ACTOR
        )
    assert caught.value.errors == {"id": ["is not a known field"]}


def test_a_live_external_id_is_taken_but_an_archived_one_is_free(scope_a):
    make_customer(scope_a.scope, external_id="taken")
    make_customer(scope_a.scope, external_id="old", status="archived")
    with pytest.raises(CustomerConflictError, match="'taken' already exists"):
        customer_create(
            scope=scope_a.scope, data={"external_id": "taken", "name": "N"}, actor=ACTOR
        )
    customer_create(scope=scope_a.scope, data={"external_id": "old", "name": "N"}, actor=ACTOR)


def test_archive_restore_move_the_counts_and_restore_checks_the_external_id(scope_a):
    customer = make_customer(scope_a.scope, external_id="e")
    customer_archive(scope=scope_a.scope, customer_id=customer.pk, actor=ACTOR)
    assert counts(scope_a.scope) == {"archived": 1}
    make_customer(scope_a.scope, external_id="e")  # the id is free again, and now taken
    with pytest.raises(CustomerConflictError):
        customer_restore(scope=scope_a.scope, customer_id=customer.pk, actor=ACTOR)
    assert counts(scope_a.scope) == {"archived": 1, "published": 1}


def test_update_refuses_a_cycle_anywhere_up_the_chain(scope_a):
    top = make_customer(scope_a.scope)
    middle = make_customer(scope_a.scope, parent=top)
    bottom = make_customer(scope_a.scope, parent=middle)
    with pytest.raises(CustomerValidationError) as caught:
        customer_update(
            scope=scope_a.scope,
            customer_id=top.pk,
            data={"parent_customer_id": bottom.pk},
            actor=ACTOR,
        )
    assert caught.value.errors == {
        "parent_customer_id": ["must not be one of the customer's descendants"]
    }


def test_a_refused_update_changes_nothing_and_records_nothing(scope_a, scope_b):
    customer = make_customer(scope_a.scope, name="Before")
    elsewhere = make_customer(scope_b.scope)
    with pytest.raises(CustomerValidationError):
        customer_update(
            scope=scope_a.scope,
            customer_id=customer.pk,
            data={"name": "After", "parent_customer_id": elsewhere.pk},
            actor=ACTOR,
        )
    customer.refresh_from_db()
    assert customer.name == "Before"
    assert not CustomerEvent.objects.exists()


def test_every_change_is_one_event_by_the_actor(scope_a):
    customer = customer_create(
        scope=scope_a.scope, data={"external_id": "e", "name": "A"}, actor=ACTOR
    )
    customer_update(
        scope=scope_a.scope, customer_id=customer.pk, data={"name": "B"}, actor=Actor.user("ann")
    )
    customer_archive(scope=scope_a.scope, customer_id=customer.pk, actor=ACTOR)
    customer_archive(scope=scope_a.scope, customer_id=customer.pk, actor=ACTOR)  # no change
    events = list(CustomerEvent.objects.order_by("created_at", "id"))
    assert [(e.type, e.actor_type, e.actor_id) for e in events] == [
        ("customer.created", "command", "test_services"),
        ("customer.updated", "user", "ann"),
        ("customer.archived", "command", "test_services"),
    ]
