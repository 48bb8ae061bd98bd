"""Tenants, their environments, staff memberships, API keys and the customers themselves."""

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.ids import new_customer_id, new_event_id, new_webhook_endpoint_id
from customers.scope import Scope
from customers.shape import max_length_of


class CodePointCollationMixin:
    """Compare and sort by code point on PostgreSQL whatever the database's default collation.

    SQLite's default (BINARY) already compares code points; PostgreSQL's depends on how the
    cluster was created (``en_US.UTF-8`` sorts ``B`` after ``a``), so the column says ``C``.
    """

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


class CodePointCharField(CodePointCollationMixin, models.CharField):
    pass


class CodePointTextField(CodePointCollationMixin, models.TextField):
    pass


class Tenant(models.Model):
    id = CodePointCharField(primary_key=True, max_length=64)
    name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or self.id


class Environment(models.Model):
    """An environment (production, sandbox, ...) of one tenant. Ids are globally unique."""

    id = CodePointCharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="environments")
    name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant_id", "id"]

    def __str__(self) -> str:
        return f"{self.tenant_id} / {self.name or self.id}"

    @property
    def scope(self) -> Scope:
        return Scope(tenant_id=self.tenant_id, environment_id=self.id)


class Membership(models.Model):
    """A staff user belongs to a tenant: they see and edit that tenant's customers."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_user_tenant_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant_id}"


def hash_api_key(raw_key: str) -> str:
    # Keys carry 192 random bits: a fast hash is as safe as a slow one and costs microseconds.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A key for one scope. Only its SHA-256 hash is stored; the prefix identifies it to people."""

    PREFIX_LENGTH = 11

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="api_keys")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def scope(self) -> Scope:
        return Scope(tenant_id=self.tenant_id, environment_id=self.environment_id)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class CustomerStatus(models.TextChoices):
    PUBLISHED = "published"
    DRAFT = "draft"
    ARCHIVED = "archived"


def sort_keys_for(*, name: str, email: str | None) -> tuple[str, str | None]:
    """The case-insensitive sort keys: Python's lowercase, identical on every database."""
    return name.lower(), (email.lower() if email is not None else None)


# Joins the searched fields in `search_key`; search terms never contain it (they are split
# on white space), so no term matches across two fields.
SEARCH_KEY_SEPARATOR = "\n"


def search_key_for(*, name: str, email: str | None, external_id: str) -> str:
    """What the operators' search looks in: name, email and external id, lowercased."""
    return SEARCH_KEY_SEPARATOR.join((name, email or "", external_id)).lower()


def derived_keys_for(*, name: str, email: str | None, external_id: str) -> tuple:
    """The values of Customer.DERIVED_KEY_FIELDS, in order: the one rule for every writer."""
    name_key, email_key = sort_keys_for(name=name, email=email)
    return name_key, email_key, search_key_for(name=name, email=email, external_id=external_id)


class Customer(models.Model):
    id = CodePointCharField(
        primary_key=True, max_length=max_length_of("id"), default=new_customer_id
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="customers", db_index=False
    )
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="customers", db_index=False
    )
    # Lengths and nullability from customers.shape (the one definition of the fields).
    external_id = CodePointCharField(max_length=max_length_of("external_id"))
    name = models.CharField(max_length=max_length_of("name"))
    email = models.CharField(max_length=max_length_of("email"), null=True, blank=True)  # noqa: DJ001
    address_line1 = models.CharField(
        max_length=max_length_of("address_line1"), blank=True, default=""
    )
    address_line2 = models.CharField(
        max_length=max_length_of("address_line2"), blank=True, default=""
    )
    address_city = models.CharField(
        max_length=max_length_of("address_city"), blank=True, default=""
    )
    address_state = models.CharField(
        max_length=max_length_of("address_state"), blank=True, default=""
    )
    address_postal_code = models.CharField(
        max_length=max_length_of("address_postal_code"), blank=True, default=""
    )
    address_country = models.CharField(
        max_length=max_length_of("address_country"), blank=True, default=""
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        db_column="parent_customer_id",
        db_index=False,  # indexed in Meta, without the LIKE index Django would add
    )
    metadata = models.JSONField(default=dict, blank=True)
    status = CodePointCharField(
        max_length=max_length_of("status"),
        choices=CustomerStatus.choices,
        default=CustomerStatus.PUBLISHED,
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Lowercased copies that `sort=name` / `sort=email` and the email filter use, kept in
    # step by save() and the importer (see sort_keys_for).
    name_key = CodePointTextField(editable=False, default="")
    email_key = CodePointTextField(editable=False, null=True)
    # Lowercased name, email and external id for the admin's substring search (a trigram
    # index serves it on PostgreSQL).
    search_key = models.TextField(editable=False, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "environment", "external_id"],
                condition=~Q(status="archived"),
                name="customer_live_external_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=CustomerStatus.values), name="customer_status_valid"
            ),
        ]
        # Every list query filters on the scope first, then sorts with `id` as tie-break.
        indexes = [
            models.Index(
                fields=["tenant", "environment", "created_at", "id"], name="customer_scope_created"
            ),
            models.Index(
                fields=["tenant", "environment", "updated_at", "id"], name="customer_scope_updated"
            ),
            models.Index(
                fields=["tenant", "environment", "name_key", "id"], name="customer_scope_name"
            ),
            models.Index(
                fields=["tenant", "environment", "email_key", "id"], name="customer_scope_email"
            ),
            models.Index(
                fields=["tenant", "environment", "external_id", "id"],
                name="customer_scope_external_id",
            ),
            models.Index(
                fields=["tenant", "environment", "status", "created_at", "id"],
                name="customer_scope_status",
            ),
            # The dashboard's "archived in the last 7 / 30 days" (status=archived and
            # updated_at[gte], the list's own filters): an index-only range.
            models.Index(
                fields=["tenant", "environment", "status", "updated_at", "id"],
                name="customer_scope_status_updated",
            ),
            models.Index(fields=["parent"], name="customer_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"

    def save(self, *args, **kwargs):
        self.refresh_derived_keys()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, *self.DERIVED_KEY_FIELDS}
        super().save(*args, **kwargs)

    DERIVED_KEY_FIELDS = ("name_key", "email_key", "search_key")

    def refresh_derived_keys(self) -> None:
        """Recompute the sort and search keys (bulk inserts call this; save() does itself)."""
        self.name_key, self.email_key, self.search_key = derived_keys_for(
            name=self.name, email=self.email, external_id=self.external_id
        )

    @property
    def scope(self) -> Scope:
        return Scope(tenant_id=self.tenant_id, environment_id=self.environment_id)


class IdempotencyRecord(models.Model):
    """The first response to a write sent with an `Idempotency-Key`, replayed for 24 hours.

    Unique per scope and key: a concurrent request with the same key waits on the unique
    index until the first one commits, then replays its response.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, db_index=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, db_index=False)
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "environment", "key"], name="idempotency_scope_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.tenant_id}/{self.environment_id})"


class CustomerStatusCount(models.Model):
    """How many customers a scope has per status, kept in the same transaction as each write.

    The list's exact `total` reads these rows instead of counting hundreds of thousands of
    customers when no other filter narrows the list (see selectors.count_matching).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, db_index=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, db_index=False)
    status = CodePointCharField(max_length=16, choices=CustomerStatus.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "environment", "status"], name="status_count_scope_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.environment_id} {self.status}: {self.count}"


class CustomerEventType(models.TextChoices):
    CREATED = "customer.created", "Created"
    UPDATED = "customer.updated", "Updated"
    ARCHIVED = "customer.archived", "Archived"
    RESTORED = "customer.restored", "Restored"
    ERASED = "customer.erased", "Erased"


class ActorType(models.TextChoices):
    API_KEY = "api_key", "API key"
    USER = "user", "User"
    COMMAND = "command", "Command"


class CustomerEvent(models.Model):
    """One change to a customer, written in the change's own transaction (the event log).

    ``data`` is ``{"object": the customer as the API returns it after the change,
    "previous_attributes": the old value of every field that changed}``.
    """

    id = CodePointCharField(primary_key=True, max_length=40, default=new_event_id)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, db_index=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, db_index=False)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, db_index=False, related_name="events"
    )
    type = CodePointCharField(max_length=32, choices=CustomerEventType.choices)
    created_at = models.DateTimeField(default=timezone.now)
    actor_type = CodePointCharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=150)
    request_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    data = models.JSONField()

    class Meta:
        indexes = [
            # The scope's log, newest first.
            models.Index(
                fields=["tenant", "environment", "created_at", "id"], name="event_scope_created"
            ),
            # One customer's history (customer ids are global), and the foreign key's own
            # check when a customer row is deleted (bench and test clean-ups).
            models.Index(fields=["customer", "created_at", "id"], name="event_customer"),
            # purge_events: the oldest events of every scope.
            models.Index(fields=["created_at"], name="event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.customer_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"


# -- Webhooks ---------------------------------------------------------------------------------


class WebhookEndpoint(models.Model):
    """A URL of one scope that is sent the scope's events of the types it subscribes to.

    The signing secrets are kept as they are used (``whsec_`` + base64), not hashed: every
    delivery computes an HMAC keyed with the secret itself, so the server needs it in clear
    (a hash could only check a secret presented to it, and a receiver never presents one).
    After a rotation the previous secret keeps signing until ``previous_secret_expires_at``.
    """

    id = CodePointCharField(primary_key=True, max_length=40, default=new_webhook_endpoint_id)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, db_index=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, db_index=False)
    url = models.CharField(max_length=2048)
    enabled_events = models.JSONField(default=list)  # event types, or ["*"]
    description = models.CharField(max_length=500, blank=True, default="")
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The scope's endpoints, oldest first (the list, the per-event lookup).
            models.Index(
                fields=["tenant", "environment", "created_at", "id"], name="webhook_scope_created"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"

    @property
    def scope(self) -> Scope:
        return Scope(tenant_id=self.tenant_id, environment_id=self.environment_id)


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # every attempt of the retry schedule failed
    CANCELED = "canceled"  # the endpoint was disabled before it was sent


class WebhookDelivery(models.Model):
    """One event to one endpoint: created in the event's transaction, sent by deliver_webhooks.

    ``next_attempt_at`` is when it is due; a worker that claims it moves it ``LEASE`` ahead
    (``claimed_until``), so that a worker killed mid-delivery only delays it. The body is not
    stored: it is the event's JSON at the time of sending (an erasure reaches it too).
    """

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, db_index=False, related_name="deliveries"
    )
    event = models.ForeignKey(
        CustomerEvent, on_delete=models.CASCADE, db_index=False, related_name="deliveries"
    )
    status = CodePointCharField(
        max_length=16, choices=WebhookDeliveryStatus.choices, default=WebhookDeliveryStatus.PENDING
    )
    # Database defaults too: the import's COPY leaves these columns out.
    attempt_count = models.PositiveSmallIntegerField(default=0, db_default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_unique")
        ]
        indexes = [
            # The workers' claim: due pending deliveries, oldest due first.
            models.Index(
                fields=["next_attempt_at", "id"],
                name="webhook_delivery_due",
                condition=Q(status="pending"),
            ),
            # An endpoint's recent deliveries (and the foreign key's check on delete).
            models.Index(fields=["endpoint", "created_at", "id"], name="webhook_delivery_endpoint"),
            # The dashboard's endpoints with failing deliveries: only those rows.
            models.Index(
                fields=["endpoint", "created_at"],
                name="webhook_delivery_failing",
                condition=Q(status="failed") | Q(status="pending", attempt_count__gt=0),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One try of a delivery: when, the HTTP status (None when no answer), how long, and the
    first KB of the answer or the error."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, db_index=False, related_name="attempts"
    )
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    succeeded = models.BooleanField(default=False)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["delivery", "attempted_at", "id"], name="webhook_attempt_delivery")
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} at {self.attempted_at:%Y-%m-%d %H:%M:%S}: {self.status_code}"


# -- Imports from the admin ---------------------------------------------------------------------


class ImportStatus(models.TextChoices):
    CHECKING = "checking", "Checking"  # the dry run is due or running
    CHECKED = "checked", "Ready to import"  # the dry run found nothing wrong
    INVALID = "invalid", "Problems found"  # the dry run found problems: nothing to import
    QUEUED = "queued", "Importing"  # the import is due or running
    IMPORTED = "imported", "Imported"
    FAILED = "failed", "Failed"


# What a worker claims (customers.jobs): the dry run and the import.
IMPORT_DUE_STATUSES = (ImportStatus.CHECKING, ImportStatus.QUEUED)


class ImportJob(models.Model):
    """A CSV uploaded in the admin into one scope: its dry run, then its import.

    The file is in ``ImportFileChunk`` rows (any worker, on any machine, reads it from the
    database). A worker claims the job (customers.jobs) for the dry run, then again for the
    import; ``phase``, ``rows_done`` and ``progress_at`` are written by the worker as it goes
    (on a connection of their own: the import's transaction is still open).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, db_index=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, db_index=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # Kept as they were, should the users be deleted.
    created_by_name = models.CharField(max_length=150)
    imported_by_name = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField()
    status = CodePointCharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.CHECKING
    )
    # The dry run's findings.
    rows_total = models.BigIntegerField(null=True, blank=True)
    problem_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list)  # the first ones: {"line", "field", "message"}
    preview = models.JSONField(default=list)  # the first rows as they would be stored
    # Progress of the stage in hand.
    phase = models.CharField(max_length=32, blank=True, default="")
    rows_done = models.BigIntegerField(default=0)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    # The outcome.
    imported_count = models.BigIntegerField(null=True, blank=True)
    import_seconds = models.FloatField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # The claim (customers.jobs).
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        verbose_name = "customer import"
        indexes = [
            # The scope's imports, newest first (the list, the dashboard).
            models.Index(
                fields=["tenant", "environment", "created_at", "id"], name="import_scope_created"
            ),
            # The workers' claim: dry runs and imports due, oldest due first.
            models.Index(
                fields=["next_attempt_at", "id"],
                name="import_job_due",
                condition=Q(status__in=["checking", "queued"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"

    @property
    def scope(self) -> Scope:
        return Scope(tenant_id=self.tenant_id, environment_id=self.environment_id)


class ImportFileChunk(models.Model):
    """One piece of an uploaded file, in order: the file stays in the database, where every
    worker can read it, and no row holds more than ``customers.import_jobs.CHUNK_BYTES``."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="import_chunk_unique")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.number}"


# -- Saved views --------------------------------------------------------------------------------


class SavedView(models.Model):
    """A customer list saved under a name: its parameters (filters, search, sort, order, as
    the list reads them) and the admin's visible columns.

    Private to its owner, or shared with the tenant's staff; only shared views are visible
    to the tenant's API keys (`view=<slug>` on the list and the export).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, db_index=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    name = models.CharField(max_length=100)
    slug = CodePointCharField(max_length=100)
    shared = models.BooleanField(default=False)
    # Parameter name -> its values, as a query string gives them (`{"status": ["draft"]}`).
    params = models.JSONField(default=dict)
    columns = models.JSONField(default=list)  # the admin's column names; [] for the default
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="saved_view_tenant_slug")
        ]

    def __str__(self) -> str:
        return self.name
