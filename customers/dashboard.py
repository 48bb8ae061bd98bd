"""The admin index's dashboard: the state of the operator's current environment at a glance.

``environment_dashboard`` reads, for one scope, in a fixed number of queries whatever the
numbers of customers, events, endpoints and imports (a test counts them):

- customers per status, from the kept per-status counts (``CustomerStatusCount``: no COUNT);
- created in the last 7 and 30 days: one index-only range of ``customer_scope_created``;
- archived in the last 7 and 30 days: customers archived whose last change is that recent
  (``status=archived&updated_at[gte]=...``, the list's own filters, so the figure and the
  list it links to agree), one range of ``customer_scope_status_updated``. (The event log
  could say "archived events", but no list shows those, and its scope index holds every
  event: 444 ms at the benchmark's 600,000 events, against under a millisecond here);
- the latest changes, from the event log (who, what, when), newest first;
- webhook endpoints with failing deliveries (failed, or pending after a failed attempt) in
  the last 30 days, from the partial index of those deliveries only;
- running and recent imports.

Each figure carries the URL of the customer list filtered to what it counts.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.contrib.admin.utils import quote
from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils import timezone

from customers.events import Actor, event_actor
from customers.models import (
    Customer,
    CustomerEvent,
    CustomerEventType,
    CustomerStatus,
    CustomerStatusCount,
    Environment,
    ImportJob,
    WebhookDelivery,
    WebhookDeliveryStatus,
)

PERIODS_DAYS = (7, 30)
LATEST_CHANGES = 10
RECENT_IMPORTS = 5
FAILING_DAYS = 30
# What a failing delivery is: the partial index webhook_delivery_failing's condition.
FAILING_DELIVERY = Q(status=WebhookDeliveryStatus.FAILED) | Q(
    status=WebhookDeliveryStatus.PENDING, attempt_count__gt=0
)


@dataclass(frozen=True)
class Figure:
    label: str
    count: int
    url: str


@dataclass(frozen=True)
class Change:
    event_type: str
    label: str
    customer_id: str
    customer_name: str
    actor: Actor
    created_at: datetime
    customer_url: str
    history_url: str


@dataclass(frozen=True)
class FailingEndpoint:
    endpoint_id: str
    url: str
    failing: int
    last_failure_at: datetime
    page_url: str


@dataclass
class Dashboard:
    environment: Environment
    total: Figure
    statuses: list[Figure] = field(default_factory=list)
    created: list[Figure] = field(default_factory=list)
    archived: list[Figure] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    failing_endpoints: list[FailingEndpoint] | None = None  # None: not the operator's to see
    imports: list[ImportJob] | None = None
    imports_url: str = ""
    imports_add_url: str = ""  # empty: the operator may not import


def customer_list_url(**params: str) -> str:
    url = reverse("admin:customers_customer_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def bound(moment: datetime) -> str:
    """A list bound, RFC 3339 in UTC to the second (the figure counts from the same instant)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def environment_dashboard(
    *,
    environment: Environment,
    now: datetime | None = None,
    with_endpoints: bool = True,
    with_imports: bool = True,
    may_import: bool = False,
) -> Dashboard:
    scope = environment.scope
    now = (now or timezone.now()).replace(microsecond=0)
    since = {days: now - timedelta(days=days) for days in PERIODS_DAYS}
    longest = since[max(PERIODS_DAYS)]

    counts = dict(scope.confine(CustomerStatusCount.objects.all()).values_list("status", "count"))
    dashboard = Dashboard(
        environment=environment,
        total=Figure("All customers", sum(counts.values()), customer_list_url()),
        statuses=[
            Figure(status.label, counts.get(status.value, 0), customer_list_url(status=status))
            for status in CustomerStatus
        ],
    )

    customers = scope.confine(Customer.objects.all())
    created = customers.filter(created_at__gte=longest).aggregate(
        **{
            f"days_{days}": Count("pk", filter=Q(created_at__gte=moment))
            for days, moment in since.items()
        }
    )
    dashboard.created = [
        Figure(
            f"Created in the last {days} days",
            created[f"days_{days}"],
            customer_list_url(**{"created_at[gte]": bound(moment)}),
        )
        for days, moment in since.items()
    ]
    archived = customers.filter(status=CustomerStatus.ARCHIVED, updated_at__gte=longest).aggregate(
        **{
            f"days_{days}": Count("pk", filter=Q(updated_at__gte=moment))
            for days, moment in since.items()
        }
    )
    dashboard.archived = [
        Figure(
            f"Archived in the last {days} days",
            archived[f"days_{days}"],
            customer_list_url(status=CustomerStatus.ARCHIVED, **{"updated_at[gte]": bound(moment)}),
        )
        for days, moment in since.items()
    ]

    events = scope.confine(CustomerEvent.objects.all()).order_by("-created_at", "-id")
    dashboard.changes = [
        Change(
            event_type=event.type,
            label=CustomerEventType(event.type).label
            if event.type in CustomerEventType.values
            else event.type,
            customer_id=event.customer_id,
            customer_name=((event.data or {}).get("object") or {}).get("name") or "",
            actor=event_actor(event),
            created_at=event.created_at,
            customer_url=reverse(
                "admin:customers_customer_change", args=[quote(event.customer_id)]
            ),
            history_url=reverse(
                "admin:customers_customer_history", args=[quote(event.customer_id)]
            ),
        )
        for event in events[:LATEST_CHANGES]
    ]

    if with_endpoints:
        failing = (
            WebhookDelivery.objects.filter(
                FAILING_DELIVERY,
                endpoint__tenant_id=scope.tenant_id,
                endpoint__environment_id=scope.environment_id,
                created_at__gte=now - timedelta(days=FAILING_DAYS),
            )
            .values("endpoint_id", "endpoint__url")
            .annotate(failing=Count("pk"), last=Max("created_at"))
            .order_by("-last", "endpoint_id")
        )
        dashboard.failing_endpoints = [
            FailingEndpoint(
                endpoint_id=row["endpoint_id"],
                url=row["endpoint__url"],
                failing=row["failing"],
                last_failure_at=row["last"],
                page_url=reverse(
                    "admin:customers_webhookendpoint_change", args=[quote(row["endpoint_id"])]
                )
                + "#deliveries",
            )
            for row in failing
        ]

    if with_imports:
        dashboard.imports = list(
            scope.confine(ImportJob.objects.all())
            .defer("problems", "preview")
            .order_by("-created_at", "-id")[:RECENT_IMPORTS]
        )
        dashboard.imports_url = reverse("admin:customers_importjob_changelist")
        if may_import:
            dashboard.imports_add_url = reverse("admin:customers_importjob_add")
    return dashboard
