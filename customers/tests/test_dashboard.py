"""The admin index's dashboard: the current environment's figures (from the kept counts, and
ranges of the scope's indexes), each linking to the list filtered to what it counts; the
latest changes with who made them; failing webhook endpoints; recent imports; a fixed
number of queries; and the indexes the PostgreSQL plans use."""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.access import SESSION_ENVIRONMENT_KEY
from customers.dashboard import FAILING_DELIVERY, environment_dashboard
from customers.events import Actor
from customers.import_jobs import import_job_create
from customers.models import Customer, CustomerEvent, WebhookDelivery, WebhookEndpoint
from customers.services import customer_archive, customer_create, staff_user_upsert
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db

INDEX = "/admin/"


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.fixture
def operator(scope_a, scope_a_sandbox, scope_b):
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def create(scope, external_id: str, **fields):
    return customer_create(
        scope=scope,
        data={"external_id": external_id, "name": f"Name {external_id}", **fields},
        actor=Actor.user("alice"),
    )


def aged(customer, *, days: float, field: str = "created_at") -> None:
    Customer.objects.filter(pk=customer.pk).update(**{field: timezone.now() - timedelta(days=days)})


def populate(scope_a, scope_b) -> None:
    for number in range(3):
        create(scope_a.scope, f"new_{number}")
    old = create(scope_a.scope, "old")
    aged(old, days=20)
    older = create(scope_a.scope, "older", status="draft")
    aged(older, days=40)
    archived = create(scope_a.scope, "archived")
    customer_archive(scope=scope_a.scope, customer_id=archived.pk, actor=Actor.user("bob"))
    long_archived = create(scope_a.scope, "long_archived")
    customer_archive(scope=scope_a.scope, customer_id=long_archived.pk, actor=Actor.user("bob"))
    aged(long_archived, days=10, field="updated_at")
    create(scope_b.scope, "other_tenant")  # never counted


def test_figures_of_the_current_environment(scope_a, scope_a_sandbox, scope_b):
    populate(scope_a, scope_b)
    board = environment_dashboard(environment=scope_a.environment)
    assert board.total.count == 7
    assert {figure.label: figure.count for figure in board.statuses} == {
        "Published": 4,
        "Draft": 1,
        "Archived": 2,
    }
    assert [figure.count for figure in board.created] == [5, 6]
    assert [figure.count for figure in board.archived] == [1, 2]
    assert board.changes[0].event_type == "customer.archived"
    assert str(board.changes[0].actor) == "User bob"
    assert board.changes[-1].customer_name.startswith("Name ")
    assert environment_dashboard(environment=scope_a_sandbox.environment).total.count == 0


def test_each_figure_links_to_the_list_filtered_to_what_it_counts(operator, scope_a, scope_b):
    populate(scope_a, scope_b)
    board = environment_dashboard(environment=scope_a.environment)
    figures = [board.total, *board.statuses, *board.created, *board.archived]
    for figure in figures:
        response = operator.get(figure.url)
        assert response.status_code == 200, figure
        ids = response.context["cl"].result_list
        assert len(ids) == figure.count, (figure, len(ids))
    created_7 = dict(parse_qsl(urlsplit(board.created[0].url).query))
    assert set(created_7) == {"created_at[gte]"}
    assert created_7["created_at[gte]"].endswith("Z")
    archived_30 = dict(parse_qsl(urlsplit(board.archived[1].url).query))
    assert set(archived_30) == {"status", "updated_at[gte]"}


def test_the_index_shows_the_dashboard_of_the_current_environment(operator, scope_a, scope_b):
    populate(scope_a, scope_b)
    page = text_of(operator.get(INDEX).content.decode())
    assert "tenant_a / env_a" in page
    assert "All customers 7" in page
    assert "Created in the last 7 days 5" in page
    assert "Archived in the last 30 days 2" in page
    assert "Archived Name archived User bob" in page
    session = operator.session
    session[SESSION_ENVIRONMENT_KEY] = "env_a_sandbox"
    session.save()
    page = text_of(operator.get(INDEX).content.decode())
    assert "tenant_a / env_a_sandbox" in page
    assert "All customers 0" in page
    assert "No changes yet." in page


def failing_endpoint(scope, url: str, *, deliveries: int, status: str = "failed"):
    """An endpoint of ``scope`` with ``deliveries`` deliveries in ``status`` after an attempt
    (each of an event of its own)."""
    endpoint = WebhookEndpoint.objects.create(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        url=url,
        enabled_events=["*"],
        secret="whsec_test",
    )
    for _ in range(deliveries):
        customer = make_customer(scope)
        event = CustomerEvent.objects.create(
            tenant_id=scope.tenant_id,
            environment_id=scope.environment_id,
            customer=customer,
            type="customer.created",
            actor_type="command",
            actor_id="test",
            data={"object": {"name": customer.name}},
        )
        WebhookDelivery.objects.create(
            endpoint=endpoint, event=event, status=status, attempt_count=1
        )
    return endpoint


def test_failing_endpoints_and_recent_imports(operator, scope_a, scope_b):
    for number in range(4):
        create(scope_a.scope, f"c{number}")
    failing = failing_endpoint(scope_a.scope, "https://failing.example.com/h", deliveries=3)
    healthy = failing_endpoint(
        scope_a.scope, "https://fine.example.com/h", deliveries=2, status="succeeded"
    )
    failing_endpoint(scope_b.scope, "https://theirs.example.com/h", deliveries=1)
    job = import_job_create(
        scope=scope_a.scope,
        user=operator.user,
        uploaded=SimpleUploadedFile("mine.csv", b"external_id,name\na,A\n"),
    )
    board = environment_dashboard(environment=scope_a.environment)
    assert [(e.endpoint_id, e.failing) for e in board.failing_endpoints] == [(failing.pk, 3)]
    assert healthy.pk not in board.failing_endpoints[0].page_url
    assert [imported.pk for imported in board.imports] == [job.pk]
    page = text_of(operator.get(INDEX).content.decode())
    assert "https://failing.example.com/h 3 failing" in page
    assert "theirs.example.com" not in page
    assert "mine.csv Checking operator" in page


def test_the_index_costs_a_fixed_number_of_queries(operator, scope_a, scope_b):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert operator.get(INDEX).status_code == 200
        return len(captured)

    operator.get(INDEX)  # warm Django's caches (content types, permissions)
    few = queries()
    populate(scope_a, scope_b)
    for number in range(15):
        create(scope_a.scope, f"more_{number}")
    failing_endpoint(scope_a.scope, "https://a.example.com/h", deliveries=3)
    failing_endpoint(scope_a.scope, "https://b.example.com/h", deliveries=2, status="pending")
    for number in range(3):
        import_job_create(
            scope=scope_a.scope,
            user=operator.user,
            uploaded=SimpleUploadedFile(f"f{number}.csv", b"external_id,name\na,A\n"),
        )
    many = queries()
    assert many == few
    assert many <= 13, many  # session, user, permissions (2), environments (2), dashboard (6), log
    # None of them counts customers: the statuses come from the kept counts.
    with CaptureQueriesContext(connection) as captured:
        operator.get(INDEX)
    customer_counts = [
        query["sql"]
        for query in captured.captured_queries
        if "COUNT(" in query["sql"].upper()
        and '"customers_customer"' in query["sql"]
        and "created_at" not in query["sql"]
        and "updated_at" not in query["sql"]
    ]
    assert customer_counts == []


def test_staff_without_tenants_see_no_dashboard(db):
    user = get_user_model().objects.create_user("lonely", is_staff=True)
    client = Client()
    client.force_login(user)
    response = client.get(INDEX)
    assert response.status_code == 200
    assert 'id="dashboard"' not in response.content.decode()


# --- the plans (PostgreSQL) -----------------------------------------------------------------


def plan_of(queryset) -> str:
    return queryset.explain()


@pytest.mark.postgres
def test_the_dashboards_ranges_read_their_indexes(scope_a, scope_b):
    """Over customers spread across three years (of which a tenth archived), ANALYZEd."""
    now = timezone.now()
    rows = []
    for scope in (scope_a.scope, scope_b.scope):
        for number in range(4000):
            moment = now - timedelta(hours=6 * number)
            customer = Customer(
                id=f"cust_{scope.environment_id}_{number:06d}",
                tenant_id=scope.tenant_id,
                environment_id=scope.environment_id,
                external_id=f"user_{number}",
                name=f"Company {number}",
                status="archived" if number % 10 == 3 else "published",
                created_at=moment,
                updated_at=moment + timedelta(hours=number % 7),
            )
            customer.refresh_derived_keys()
            rows.append(customer)
    Customer.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")
    scope = scope_a.scope
    since = now - timedelta(days=30)
    customers = scope.confine(Customer.objects.all())
    created = plan_of(customers.filter(created_at__gte=since).values("pk"))
    assert "customer_scope_created" in created, created
    archived = plan_of(customers.filter(status="archived", updated_at__gte=since).values("pk"))
    assert "customer_scope_status_updated" in archived, archived
    failing = plan_of(
        WebhookDelivery.objects.filter(
            FAILING_DELIVERY,
            endpoint__tenant_id=scope.tenant_id,
            endpoint__environment_id=scope.environment_id,
            created_at__gte=since,
        ).values("endpoint_id")
    )
    assert "webhook_delivery_failing" in failing, failing
