"""On PostgreSQL, each main list query is served by the index built for it.

EXPLAIN on a tiny table shows whatever the planner guesses; so the module loads a
realistic spread of customers over several scopes and ANALYZEs them first.
"""

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from customers.cursors import CursorPosition, keyset_ranges
from customers.filters import sort_keys
from customers.models import Customer, CustomerStatus, Environment, Tenant
from customers.scope import Scope, TenantScope
from customers.selectors import customer_events, customer_list
from customers.services import environment_ensure

pytestmark = pytest.mark.postgres

SCOPES = [("tenant_p", "env_p1"), ("tenant_p", "env_p2"), ("tenant_q", "env_q1")]
ROWS_PER_SCOPE = 5000


@pytest.fixture(scope="module")
def analysed_customers(django_db_setup, django_db_blocker):
    rng = random.Random(5)
    start = datetime(2022, 1, 1, tzinfo=UTC)
    with django_db_blocker.unblock():
        rows = []
        for tenant_id, environment_id in SCOPES:
            environment_ensure(tenant_id=tenant_id, environment_id=environment_id)
            for number in range(ROWS_PER_SCOPE):
                name = f"Company {rng.randint(1, 10**6)}"
                email = None if number % 20 == 0 else f"user{number}@example{number % 97}.com"
                customer = Customer(
                    id=f"cust_{environment_id}_{number:06d}",
                    tenant_id=tenant_id,
                    environment_id=environment_id,
                    external_id=f"user_{number}",
                    name=name,
                    email=email,
                    status=rng.choice(
                        [CustomerStatus.PUBLISHED] * 8
                        + [CustomerStatus.DRAFT, CustomerStatus.ARCHIVED]
                    ),
                    parent_id=f"cust_{environment_id}_{number - 1:06d}"
                    if number % 10 == 5
                    else None,
                    metadata={"plan": f"plan_{number % 50}", "region": f"r{number % 4}"},
                    created_at=start + timedelta(minutes=rng.randint(0, 10**6)),
                    updated_at=start + timedelta(minutes=rng.randint(0, 10**6)),
                )
                customer.refresh_derived_keys()
                rows.append(customer)
        Customer.objects.bulk_create(rows, batch_size=2000)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE customers_customer")
        yield Scope(tenant_id="tenant_p", environment_id="env_p1")
        with connection.cursor() as cursor:
            # One statement: the parent links inside the set are checked at its end.
            cursor.execute(
                "DELETE FROM customers_customer WHERE tenant_id IN ('tenant_p', 'tenant_q')"
            )
        Environment.objects.filter(tenant_id__in=["tenant_p", "tenant_q"]).delete()
        Tenant.objects.filter(id__in=["tenant_p", "tenant_q"]).delete()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "customer_scope_created"),
        ({"order": "asc"}, "customer_scope_created"),
        ({"sort": "updated_at"}, "customer_scope_updated"),
        ({"sort": "name", "order": "asc"}, "customer_scope_name"),
        ({"sort": "name", "order": "desc"}, "customer_scope_name"),
        ({"sort": "email", "order": "asc"}, "customer_scope_email"),
        ({"sort": "email", "order": "desc"}, "customer_scope_email"),
        ({"sort": "external_id"}, "customer_scope_external_id"),
        ({"email": "User15@Example15.com"}, "customer_scope_email"),
        ({"external_id": "user_1"}, "customer_scope_external_id"),
        ({"external_ids": "user_1,user_2"}, "customer_scope_external_id"),
        ({"status": "archived"}, "customer_scope_status"),
        ({"parent_customer_ids": "cust_env_p1_000004"}, "customer_parent"),
        (
            {"created_at[gte]": "2022-06-01", "created_at[lt]": "2022-06-08T00:00:00Z"},
            "customer_scope_created",
        ),
        ({"updated_at[gt]": "2023-11-01T10:00:00+02:00"}, "customer_scope_updated"),
    ],
)
def test_list_query_uses_its_index(analysed_customers, filters, index):
    queryset = customer_list(scope=analysed_customers, filters=filters)
    plan = queryset[:50].explain()
    assert f"using {index} on" in plan, plan
    assert "Seq Scan" not in plan, plan


SEARCH_SCOPE = ("tenant_s", "env_s")
SEARCH_SCOPE_ROWS = 50_000


@pytest.fixture(scope="module")
def large_search_scope(analysed_customers, django_db_blocker):
    """A scope large enough that reading all of it costs more than the trigram index.

    (In a scope of a few thousand customers a scan of the scope's btree wins, and
    should.) Written with one INSERT ... SELECT: 50,000 rows in about a second.
    """
    tenant_id, environment_id = SEARCH_SCOPE
    with django_db_blocker.unblock():
        environment_ensure(tenant_id=tenant_id, environment_id=environment_id)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO customers_customer (
                    id, tenant_id, environment_id, external_id, name, email, address_line1,
                    address_line2, address_city, address_state, address_postal_code,
                    address_country, metadata, status, created_at, updated_at, name_key,
                    email_key, search_key)
                SELECT 'cust_s_' || n, %s, %s, 'user_' || n, 'Company ' || n,
                    'user' || n || '@example' || (n %% 97) || '.com', '', '', '', '', '', '',
                    jsonb_build_object('plan', 'plan_' || (n %% 50), 'region', 'r' || (n %% 4)),
                    'published', now() - n * interval '1 minute', now(),
                    'company ' || n, 'user' || n || '@example' || (n %% 97) || '.com',
                    'company ' || n || chr(10) || 'user' || n || '@example' || (n %% 97)
                    || '.com' || chr(10) || 'user_' || n
                FROM generate_series(1, %s) AS n
                """,
                [tenant_id, environment_id, SEARCH_SCOPE_ROWS],
            )
            cursor.execute("ANALYZE customers_customer")
        yield TenantScope(tenant_ids=frozenset({tenant_id}))
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM customers_customer WHERE tenant_id = %s", [tenant_id])
        Environment.objects.filter(tenant_id=tenant_id).delete()
        Tenant.objects.filter(id=tenant_id).delete()


@pytest.mark.django_db
@pytest.mark.parametrize("words", ["user1234", "company 123456"])
def test_the_admin_search_is_served_by_the_scope_trigram_index(large_search_scope, words):
    """The admin's search (an operator's tenants, one environment) and its count."""
    queryset = customer_list(
        scope=large_search_scope, filters={"q": words, "environment": SEARCH_SCOPE[1]}
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # Not the LIMIT-ed page (walking the created_at index may win there): every match,
        # as the count visits them, with sequential scans priced out as on a large table.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.order_by().explain()
    assert "customer_scope_search_trgm" in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.django_db
def test_a_metadata_filter_is_served_by_the_scope_metadata_index(large_search_scope):
    """`metadata[plan]=plan_7` (2% of a 50,000-customer scope): one containment, served by
    the scope's GIN index."""
    scope = Scope(tenant_id=SEARCH_SCOPE[0], environment_id=SEARCH_SCOPE[1])
    queryset = customer_list(
        scope=scope, filters={"metadata[plan]": "plan_7", "metadata[region]": "r3"}
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.order_by().explain()
    assert "customer_scope_metadata" in plan, plan
    assert "@>" in plan, plan


@pytest.mark.django_db
def test_the_api_search_is_served_by_the_scope_trigram_index(large_search_scope):
    scope = Scope(tenant_id=SEARCH_SCOPE[0], environment_id=SEARCH_SCOPE[1])
    queryset = customer_list(scope=scope, filters={"q": "user1234"})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.order_by().explain()
    assert "customer_scope_search_trgm" in plan, plan


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sort", "order", "value", "index"),
    [
        ("created_at", "desc", datetime(2023, 6, 1, tzinfo=UTC), "customer_scope_created"),
        ("name", "asc", "company 500000", "customer_scope_name"),
        ("email", "asc", "user2500@example70.com", "customer_scope_email"),
        ("email", "desc", "user2500@example70.com", "customer_scope_email"),
        ("external_id", "desc", "user_2500", "customer_scope_external_id"),
    ],
)
def test_a_cursor_page_starts_inside_its_sort_index(analysed_customers, sort, order, value, index):
    """The page after a cursor: a row comparison in the index condition, so its cost does
    not grow with the depth (no filter over the rows before it)."""
    after = CursorPosition(value=value, id="cust_env_p1_002500")
    queryset = customer_list(scope=analysed_customers, filters={"sort": sort, "order": order})
    first_range = keyset_ranges(queryset, keys=sort_keys(sort, order), after=after)[0]
    plan = first_range.values_list("id")[:50].explain()
    assert f"using {index} on" in plan, plan
    index_condition = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "ROW(" in index_condition, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.django_db
def test_a_customers_history_is_served_by_the_event_customer_index(analysed_customers):
    """Four events for each of the scope's 5,000 customers: one customer's history reads
    only its own, from the (customer, created_at, id) index."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO customers_customerevent (
                id, tenant_id, environment_id, customer_id, type, created_at, actor_type,
                actor_id, request_id, data)
            SELECT 'evt_' || c.id || '_' || n, c.tenant_id, c.environment_id, c.id,
                'customer.updated', c.created_at + n * interval '1 day', 'command', 'tests',
                NULL, '{}'::jsonb
            FROM customers_customer c, generate_series(1, 4) AS n
            WHERE c.environment_id = 'env_p1'
            """
        )
        cursor.execute("ANALYZE customers_customerevent")
    queryset = customer_events(scope=analysed_customers, customer_id="cust_env_p1_000001")
    plan = queryset[:50].explain()
    assert re.search(r"(using|Index Scan on) event_customer\b", plan), plan
    assert "Seq Scan" not in plan, plan


def condition(field: str, operator: str, data_type: str, value) -> dict:
    return {"field": field, "operator": operator, "data_type": data_type, "value": value}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("conditions", "index"),
    [
        (
            [condition("email", "eq", "string", {"string": "USER15@example15.com"})],
            "customer_scope_email",
        ),
        (
            [
                condition(
                    "email",
                    "in",
                    "array",
                    {"array": ["user15@example15.com", "user16@example16.com"]},
                )
            ],
            "customer_scope_email",
        ),
        (
            [condition("external_id", "eq", "string", {"string": "user_1"})],
            "customer_scope_external_id",
        ),
        (
            [condition("external_id", "in", "array", {"array": ["user_1", "user_2"]})],
            "customer_scope_external_id",
        ),
        ([condition("name", "eq", "string", {"string": "Company 5"})], "customer_scope_name"),
        (
            [condition("name", "in", "array", {"array": ["Company 5", "Company 6"]})],
            "customer_scope_name",
        ),
        ([condition("status", "eq", "string", {"string": "archived"})], "customer_scope_status"),
        (
            [condition("id", "in", "array", {"array": ["cust_env_p1_000001"]})],
            "customers_customer_pkey",
        ),
        (
            [condition("id", "eq", "string", {"string": "cust_env_p1_000001"})],
            "customers_customer_pkey",
        ),
        (
            [condition("parent_customer_id", "eq", "string", {"string": "cust_env_p1_000004"})],
            "customer_parent",
        ),
        (
            [
                condition("created_at", "gte", "date", {"date": "2022-06-01"}),
                condition("created_at", "before", "date", {"date": "2022-06-08T00:00:00Z"}),
            ],
            "customer_scope_created",
        ),
        ([condition("created_at", "eq", "date", {"date": "2022-06-01"})], "customer_scope_created"),
        (
            [condition("updated_at", "after", "date", {"date": "2023-11-01T10:00:00+02:00"})],
            "customer_scope_updated",
        ),
    ],
)
def test_search_conditions_use_the_scope_indexes(analysed_customers, conditions, index):
    """`POST /v1/customers/search`: each condition on an indexed column is served by the index
    the list's own filter uses. Every match (what the count visits), sequential scans priced
    out as on a large table (the LIMIT-ed page may rightly walk the sort index instead)."""
    queryset = customer_list(scope=analysed_customers, filters={"conditions": conditions})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.order_by().explain()
    assert index in plan, plan  # customer_scope_status: or its sibling on (status, updated_at)
    assert "Seq Scan" not in plan, plan


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("conditions", "index", "operator"),
    [
        (
            [condition("name", "contains", "string", {"string": "pany 1234"})],
            "customer_scope_search_trgm",
            "~~",
        ),
        (
            [condition("email", "contains", "string", {"string": "USER1234@"})],
            "customer_scope_search_trgm",
            "~~",
        ),
        (
            [condition("external_id", "contains", "string", {"string": "user_123"})],
            "customer_scope_search_trgm",
            "~~",
        ),
        (
            [condition("metadata.plan", "eq", "string", {"string": "plan_7"})],
            "customer_scope_metadata",
            "@>",
        ),
        (
            # one jsonpath (@@) for every value: one scan of the index
            [condition("metadata.plan", "in", "array", {"array": ["plan_7", "plan_8"]})],
            "customer_scope_metadata",
            "@@",
        ),
    ],
)
def test_search_contains_uses_the_trigram_index_and_metadata_its_index(
    large_search_scope, conditions, index, operator
):
    """Every match (what the count visits), sequential scans priced out as on a large table."""
    scope = Scope(tenant_id=SEARCH_SCOPE[0], environment_id=SEARCH_SCOPE[1])
    queryset = customer_list(scope=scope, filters={"conditions": conditions})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.order_by().explain()
    assert index in plan, plan
    index_condition = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert operator in index_condition, plan
    assert "Seq Scan" not in plan, plan
