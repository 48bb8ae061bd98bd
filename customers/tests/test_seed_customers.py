"""`seed_customers` and its generator (customers.seeding): deterministic, realistic, counted."""

import io
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F

from customers import bulk, seeding
from customers.ids import CROCKFORD_BASE32
from customers.importer import import_customers_csv
from customers.management.commands.seed_customers import ProgressBar
from customers.models import (
    Customer,
    CustomerEvent,
    CustomerStatus,
    CustomerStatusCount,
    WebhookDelivery,
    WebhookEndpoint,
)
from customers.representation import customer_as_dict
from customers.scope import Scope
from customers.seeding import seed_customer_rows
from customers.services import environment_ensure
from customers.tests.factories import make_customer
from customers.tests.helpers import assert_counts_match_the_customers
from customers.validation import clean_customer_fields

SCOPE = Scope(tenant_id="tenant_seed", environment_id="env_seed")
ULID_ID = re.compile(r"cust_[0-9A-HJKMNP-TV-Z]{26}")


def rows(count: int = 2000, *, scope: Scope = SCOPE, seed: int = 7):
    return list(seed_customer_rows(scope=scope, count=count, seed=seed))


def ulid_milliseconds(customer_id: str) -> int:
    value = 0
    for character in customer_id.removeprefix("cust_")[:10]:
        value = value * 32 + CROCKFORD_BASE32.index(character)
    return value


# -- The generator ---------------------------------------------------------------------------


def test_the_same_arguments_give_the_same_rows():
    assert rows(500) == rows(500)


def test_ids_depend_on_the_seed_the_tenant_and_the_environment():
    ids = {row.id for row in rows(300)}
    for other in (
        rows(300, seed=8),
        rows(300, scope=Scope(tenant_id="tenant_other", environment_id="env_seed")),
        rows(300, scope=Scope(tenant_id="tenant_seed", environment_id="env_other")),
    ):
        assert not ids & {row.id for row in other}


def test_ids_are_ulids_of_the_creation_time_and_unique():
    generated = rows()
    assert len({row.id for row in generated}) == len(generated)
    for row in generated:
        assert ULID_ID.fullmatch(row.id)
        assert ulid_milliseconds(row.id) == int(row.created_at.timestamp() * 1000)


def test_about_a_tenth_have_an_earlier_company_as_parent():
    generated = rows()
    by_id = {row.id: row for row in generated}
    children = [row for row in generated if row.parent_id is not None]
    assert 0.07 * len(generated) <= len(children) <= 0.13 * len(generated)
    for child in children:
        parent = by_id[child.parent_id]
        assert parent.line < child.line
        assert parent.created_at < child.created_at
        assert parent.parent_id is None  # one level: branches of companies
        assert child.name == f"{parent.name} ({child.address_city})"


def test_creation_times_grow_over_years_and_updates_follow():
    generated = rows()
    created = [row.created_at for row in generated]
    assert created == sorted(created)
    assert created[-1] - created[0] > timedelta(days=2 * 365)
    assert all(row.updated_at >= row.created_at for row in generated)
    assert any(row.updated_at > row.created_at for row in generated)
    assert all(row.created_at.tzinfo is UTC for row in generated)
    assert created[-1] < datetime(2025, 1, 1, tzinfo=UTC)


def test_a_realistic_mix():
    generated = rows()
    statuses = Counter(row.status for row in generated)
    assert set(statuses) == set(CustomerStatus.values)
    assert statuses["published"] > statuses["draft"] > statuses["archived"] > 0
    assert 0 < sum(row.email is None for row in generated) < 0.1 * len(generated)
    assert any(row.email and row.email[0].isupper() for row in generated)
    assert any(row.metadata == {} for row in generated)
    assert any("account_manager" in row.metadata for row in generated)
    assert len({row.address_country for row in generated}) > 5
    assert any(row.address_line2 for row in generated)
    assert len({row.name for row in generated}) > 1000
    assert len({row.external_id for row in generated}) == len(generated)


def test_every_row_passes_the_shared_field_rules():
    for row in rows(500):
        values = row._asdict()
        values["parent_customer_id"] = values.pop("parent_id")
        for server_owned in ("line", "derived_keys", "id"):
            values.pop(server_owned)
        cleaned = clean_customer_fields(values)
        assert cleaned["address_country"] == row.address_country


def test_derived_keys_are_the_models():
    for row in rows(500):
        customer = Customer(name=row.name, email=row.email, external_id=row.external_id)
        customer.refresh_derived_keys()
        expected = tuple(getattr(customer, field) for field in Customer.DERIVED_KEY_FIELDS)
        assert row.derived_keys == expected


def test_no_rows():
    assert rows(0) == []


# -- The command -----------------------------------------------------------------------------


def seed(count: int, tenant: str, environment: str, seed_value: int = 3) -> str:
    out = io.StringIO()
    call_command(
        "seed_customers",
        "--count",
        str(count),
        "--tenant",
        tenant,
        "--environment",
        environment,
        "--seed",
        str(seed_value),
        stdout=out,
        stderr=io.StringIO(),
    )
    return out.getvalue()


def check_deferred_constraints() -> None:
    """Parent, tenant and environment keys are checked at commit: check them now."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    else:
        connection.check_constraints()


@pytest.mark.django_db
def test_seeds_a_new_scope_with_counts_parents_and_the_generators_rows():
    output = seed(1200, "tenant_seed", "env_seed")
    check_deferred_constraints()
    customers = Customer.objects.filter(tenant_id="tenant_seed", environment_id="env_seed")
    assert customers.count() == 1200
    assert "Seeded 1,200 customers into tenant_seed/env_seed" in output

    expected = rows(1200, seed=3)
    stored = {customer.id: customer for customer in customers}
    assert set(stored) == {row.id for row in expected}
    sample = expected[0]
    customer = stored[sample.id]
    assert (customer.name, customer.email, customer.metadata, customer.created_at) == (
        sample.name,
        sample.email,
        sample.metadata,
        sample.created_at,
    )
    assert (customer.name_key, customer.email_key, customer.search_key) == sample.derived_keys

    statuses = Counter(customers.values_list("status", flat=True))
    assert set(statuses) == set(CustomerStatus.values)
    counts = dict(
        CustomerStatusCount.objects.filter(
            tenant_id="tenant_seed", environment_id="env_seed"
        ).values_list("status", "count")
    )
    assert counts == dict(statuses)
    assert_counts_match_the_customers()

    children = customers.filter(parent__isnull=False)
    assert 0.07 * 1200 <= children.count() <= 0.13 * 1200
    assert not children.exclude(
        parent__tenant_id=F("tenant_id"), parent__environment_id=F("environment_id")
    ).exists()
    assert not children.filter(parent__created_at__gte=F("created_at")).exists()


@pytest.mark.django_db
def test_other_scopes_with_the_same_seed_do_not_collide():
    seed(300, "tenant_seed", "env_seed")
    seed(300, "tenant_seed", "env_seed_sandbox")
    seed(300, "tenant_other", "env_other")
    check_deferred_constraints()
    assert Customer.objects.count() == 900
    assert_counts_match_the_customers()
    parents_elsewhere = Customer.objects.filter(parent__isnull=False).exclude(
        parent__environment_id=F("environment_id")
    )
    assert not parents_elsewhere.exists()


@pytest.mark.django_db
def test_seeding_the_same_scope_and_seed_again_is_refused_and_writes_nothing():
    seed(200, "tenant_seed", "env_seed")
    with pytest.raises(CommandError, match="seeded already"):
        seed(200, "tenant_seed", "env_seed")
    assert Customer.objects.count() == 200
    assert_counts_match_the_customers()
    seed(200, "tenant_seed", "env_seed", seed_value=4)  # another seed: other ids, external ids
    assert Customer.objects.count() == 400
    assert_counts_match_the_customers()


@pytest.mark.django_db
def test_an_environment_of_another_tenant_is_an_error():
    seed(10, "tenant_seed", "env_seed")
    with pytest.raises(CommandError, match="belongs to tenant"):
        seed(10, "tenant_other", "env_seed")
    with pytest.raises(CommandError, match="must not be negative"):
        seed(-1, "tenant_seed", "env_seed")


@pytest.mark.django_db
def test_no_progress_bar_unless_stderr_is_a_terminal():
    err = io.StringIO()
    call_command(
        "seed_customers",
        "--count=50",
        "--tenant=tenant_seed",
        "--environment=env_seed",
        stdout=io.StringIO(),
        stderr=err,
    )
    assert err.getvalue() == ""


def test_the_progress_bar_redraws_one_line():
    from django.core.management.base import OutputWrapper

    buffer = io.StringIO()
    bar = ProgressBar(output=OutputWrapper(buffer))
    bar(0, 1000)
    bar(1000, 1000)
    bar.finish()
    text = buffer.getvalue()
    assert text.startswith("\r[")
    assert "100% 1,000/1,000 rows" in text
    assert text.endswith("\n")


@pytest.mark.django_db
def test_the_csv_holds_the_same_customers_and_imports_as_seeding_would(tmp_path):
    path = tmp_path / "seeded.csv"
    stdout = io.StringIO()
    call_command(
        "seed_customers",
        count=300,
        tenant="tenant_csv",
        environment="env_csv",
        seed=4,
        csv=path,
        stdout=stdout,
    )
    assert "Wrote 300 customers for tenant_csv/env_csv (seed 4)" in stdout.getvalue()
    assert not Customer.objects.exists()  # a file only: nothing inserted, no scope created

    environment_ensure(tenant_id="tenant_csv", environment_id="env_csv")
    result = import_customers_csv(path=path, tenant_id="tenant_csv", environment_id="env_csv")
    assert result.imported == 300
    scope = Scope(tenant_id="tenant_csv", environment_id="env_csv")
    expected = list(seed_customer_rows(scope=scope, count=300, seed=4))
    stored = {customer.id: customer for customer in Customer.objects.all()}
    assert set(stored) == {row.id for row in expected}
    for row in expected:
        customer = stored[row.id]
        assert (customer.external_id, customer.name, customer.email) == (
            row.external_id,
            row.name,
            row.email,
        )
        assert (customer.parent_id, customer.metadata, customer.status) == (
            row.parent_id,
            row.metadata,
            row.status,
        )
        assert (customer.created_at, customer.updated_at) == (row.created_at, row.updated_at)


# -- Several writers (PostgreSQL: each its own connection and transaction) --------------------


def test_blocks_make_the_same_rows_as_one_sequence(monkeypatch):
    monkeypatch.setattr(seeding, "SEED_BLOCK_SIZE", 100)
    generated = rows(450)
    assert [len(block) for block in seeding.seed_blocks(450)] == [100, 100, 100, 100, 50]
    by_block = [
        row
        for block in seeding.seed_blocks(450)
        for row in seeding.seed_block_rows(scope=SCOPE, count=450, seed=7, numbers=block)
    ]
    assert by_block == generated
    assert [row.line for row in generated] == list(range(1, 451))
    assert len({row.id for row in generated}) == 450
    by_id = {row.id: row for row in generated}
    children = [row for row in generated if row.parent_id is not None]
    assert children
    for child in children:  # a branch's parent is an earlier company of its own block
        parent = by_id[child.parent_id]
        assert (parent.line - 1) // 100 == (child.line - 1) // 100
        assert parent.line < child.line


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_several_writers_seed_the_generators_rows_with_their_counts(monkeypatch):
    monkeypatch.setattr(seeding, "SEED_BLOCK_SIZE", 100)
    progress: list[tuple[int, int]] = []
    result = seeding.seed_customers(
        tenant_id="tenant_seed",
        environment_id="env_seed",
        count=450,
        seed=3,
        writers=2,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert result.seeded == 450
    expected = rows(450, seed=3)
    customers = Customer.objects.filter(tenant_id="tenant_seed", environment_id="env_seed")
    assert set(customers.values_list("id", flat=True)) == {row.id for row in expected}
    assert result.with_parent == sum(row.parent_id is not None for row in expected)
    assert result.statuses == dict(Counter(row.status for row in expected))
    assert_counts_match_the_customers()
    assert progress[0] == (0, 450)
    assert progress[-1] == (450, 450)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_several_writers_write_nothing_when_one_is_refused(monkeypatch):
    monkeypatch.setattr(seeding, "SEED_BLOCK_SIZE", 100)
    # The last block exists already: only the writer of that block is refused.
    scope = Scope(tenant_id="tenant_seed", environment_id="env_seed")
    environment_ensure(tenant_id="tenant_seed", environment_id="env_seed")
    last = seeding.seed_blocks(450)[-1]
    taken = next(seeding.seed_block_rows(scope=scope, count=450, seed=3, numbers=last))
    make_customer(scope, id=taken.id)
    with pytest.raises(seeding.SeedError, match="Nothing was written"):
        seeding.seed_customers(
            tenant_id="tenant_seed", environment_id="env_seed", count=450, seed=3, writers=2
        )
    assert Customer.objects.count() == 1
    assert_counts_match_the_customers()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_writer_that_fails_after_another_committed_is_undone(monkeypatch):
    monkeypatch.setattr(seeding, "SEED_BLOCK_SIZE", 100)
    real_counts_add = bulk.customer_counts_add
    calls = []

    def counts_add_failing_the_second_time(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:  # the second writer, after the first has committed
            raise RuntimeError("the connection went away")
        return real_counts_add(**kwargs)

    monkeypatch.setattr(bulk, "customer_counts_add", counts_add_failing_the_second_time)
    with pytest.raises(RuntimeError, match="went away"):
        seeding.seed_customers(
            tenant_id="tenant_seed", environment_id="env_seed", count=450, seed=3, writers=2
        )
    assert not Customer.objects.exists()
    assert_counts_match_the_customers()


# -- Events: every seeded customer's customer.created, in bulk, in the seeding's transaction --


def assert_one_created_event_per_customer(scope: Scope) -> None:
    customers = {c.id: c for c in Customer.objects.filter(**scope_filter(scope))}
    events = list(CustomerEvent.objects.filter(**scope_filter(scope)))
    assert len(events) == len(customers)
    assert {event.customer_id for event in events} == set(customers)
    for event in events:
        assert (event.type, event.actor_type, event.actor_id) == (
            "customer.created",
            "command",
            "seed_customers",
        )
        assert event.data == {
            "object": customer_as_dict(customers[event.customer_id]),
            "previous_attributes": {},
        }


def scope_filter(scope: Scope) -> dict[str, str]:
    return {"tenant_id": scope.tenant_id, "environment_id": scope.environment_id}


def subscribe(scope: Scope) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        **scope_filter(scope),
        url="https://hooks.example.com/crm",
        enabled_events=["customer.created"],
        secret="whsec_" + "QUJD" * 8,
    )


@pytest.mark.django_db
def test_seeding_records_a_created_event_per_customer_and_their_deliveries(monkeypatch):
    monkeypatch.setattr(seeding, "SEED_EVENT_BATCH_ROWS", 70)  # several batches
    environment_ensure(tenant_id=SCOPE.tenant_id, environment_id=SCOPE.environment_id)
    endpoint = subscribe(SCOPE)
    seed(250, SCOPE.tenant_id, SCOPE.environment_id)
    check_deferred_constraints()
    assert_one_created_event_per_customer(SCOPE)
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert deliveries.count() == 250
    assert set(deliveries.values_list("event_id", flat=True)) == set(
        CustomerEvent.objects.values_list("id", flat=True)
    )


@pytest.mark.django_db
def test_a_refused_seeding_records_no_event():
    seed(50, SCOPE.tenant_id, SCOPE.environment_id)
    with pytest.raises(CommandError, match="seeded already"):
        seed(50, SCOPE.tenant_id, SCOPE.environment_id)
    assert CustomerEvent.objects.count() == 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_several_writers_record_each_customers_event(monkeypatch):
    monkeypatch.setattr(seeding, "SEED_BLOCK_SIZE", 100)
    monkeypatch.setattr(seeding, "SEED_EVENT_BATCH_ROWS", 40)
    seeding.seed_customers(
        tenant_id=SCOPE.tenant_id, environment_id=SCOPE.environment_id, count=450, seed=3, writers=2
    )
    assert_one_created_event_per_customer(SCOPE)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_undone_writer_leaves_no_event_nor_delivery(monkeypatch):
    monkeypatch.setattr(seeding, "SEED_BLOCK_SIZE", 100)
    environment_ensure(tenant_id=SCOPE.tenant_id, environment_id=SCOPE.environment_id)
    subscribe(SCOPE)
    real_counts_add = bulk.customer_counts_add
    calls = []

    def counts_add_failing_the_second_time(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:  # the second writer, after the first has committed
            raise RuntimeError("the connection went away")
        return real_counts_add(**kwargs)

    monkeypatch.setattr(bulk, "customer_counts_add", counts_add_failing_the_second_time)
    with pytest.raises(RuntimeError, match="went away"):
        seeding.seed_customers(
            tenant_id=SCOPE.tenant_id,
            environment_id=SCOPE.environment_id,
            count=450,
            seed=3,
            writers=2,
        )
    assert not Customer.objects.exists()
    assert not CustomerEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
