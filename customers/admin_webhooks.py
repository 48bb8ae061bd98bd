"""Admin pages for webhook endpoints: the operator's tenants' endpoints, their recent
deliveries with every attempt, a resend button per delivery, and the secret's rotation.

Every write goes through ``customers.webhooks`` (create, update, delete, rotate, resend), so
the pages check what the API checks, with its messages (https only, public addresses unless
``WEBHOOKS_ALLOW_PRIVATE_URLS``, at most 20 endpoints per environment). A new endpoint is
created in the operator's current environment; its secret, and a rotated one, is shown once,
as a message on the page that follows.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from customers.access import current_environment, environments_of_request, tenant_scope_for_user
from customers.forms import under_label
from customers.models import (
    CustomerEventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from customers.webhooks import (
    ALL_EVENTS,
    SECRET_OVERLAP,
    UPDATE_FIELDS,
    WebhookEndpointNotFoundError,
    WebhookValidationError,
    endpoint_fields_clean,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

DELIVERIES_PER_PAGE = 25
DELIVERIES_PAGE_VAR = "deliveries_page"
EXCERPT_SHOWN = 120  # characters of an attempt's answer shown in the table (all on hover)

EVENT_CHOICES = [
    (ALL_EVENTS, "Every event type (*)"),
    *((value, value) for value in CustomerEventType.values),
]


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def secret_message(text: str, secret: str):
    """A message that shows a secret (in a <code> to copy), this once."""
    return format_html('{} <code class="webhook-secret">{}</code>', text, secret)


class WebhookEndpointForm(forms.ModelForm):
    """The endpoint's four writable fields, checked by ``endpoint_fields_clean``: the API's
    own rules and messages (under the field, capitalised as the customer form does)."""

    url = forms.CharField(
        label="URL",
        required=False,
        strip=False,
        widget=forms.TextInput(attrs={"class": "vURLField", "size": 80}),
        help_text="Where the events are POSTed: an https:// URL of a public address.",
    )
    enabled_events = forms.MultipleChoiceField(
        label="Enabled events",
        required=False,
        choices=EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        help_text="The event types sent to it: every one (*), or those chosen.",
    )
    description = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )
    enabled = forms.BooleanField(
        required=False,
        initial=True,
        help_text="A disabled endpoint is sent nothing (what is pending then is never sent).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "enabled_events", "description", "enabled")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance._state.adding and not self.is_bound:
            self.initial.setdefault("enabled_events", [ALL_EVENTS])
        for name in ("url", "enabled_events"):
            # Marked required as the API has it; the message, when empty, is the service's.
            self.fields[name].widget.is_required = True
        self.api_data: dict = {}

    def clean(self):
        cleaned = super().clean()
        creating = self.instance._state.adding
        names = [
            name
            for name in UPDATE_FIELDS
            if name in cleaned and (creating or name in self.changed_data)
        ]
        data = {name: cleaned[name] for name in names}
        if "enabled_events" in data:
            data["enabled_events"] = list(data["enabled_events"])
        try:
            self.api_data = endpoint_fields_clean(data, creating=creating)
        except WebhookValidationError as error:
            for name, problems in error.errors.items():
                target = name if name in self.fields else None
                for problem in problems:
                    self.add_error(target, under_label(problem))
        return cleaned


class SaveRefusedError(Exception):
    """The service refused a save the form had accepted (the 20th endpoint, a race)."""


class CurrentTenantEnvironmentFilter(admin.SimpleListFilter):
    """The environments of the operator's tenants (never another tenant's, as Django's
    related-field filter would list)."""

    title = "environment"
    parameter_name = "environment"

    def lookups(self, request, model_admin):
        return [
            (environment.pk, f"{environment.tenant_id} / {environment.pk}")
            for environment in environments_of_request(request)
        ]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(environment_id=self.value())
        return queryset


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "events", "enabled", "tenant_environment", "created")
    list_display_links = ("url",)
    list_filter = ("enabled", CurrentTenantEnvironmentFilter)
    search_fields = ("url", "description")
    ordering = ("created_at", "id")  # the API's order
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    readonly_fields = ("id", "tenant_id", "environment_id", "signing_secret", "created_at")
    change_form_template = "admin/customers/webhookendpoint/change_form.html"

    # --- who sees what -------------------------------------------------------------------

    def get_queryset(self, request):
        return tenant_scope_for_user(request.user).confine(WebhookEndpoint.objects.all())

    def has_add_permission(self, request):
        return super().has_add_permission(request) and current_environment(request) is not None

    def get_fieldsets(self, request, obj=None):
        editable = ("url", "enabled_events", "description", "enabled")
        if obj is None:
            return ((None, {"fields": editable}),)
        return (
            (None, {"fields": ("id", "tenant_id", "environment_id", *editable)}),
            ("Signing", {"fields": ("signing_secret", "created_at")}),
        )

    # --- list ----------------------------------------------------------------------------

    @admin.display(description="Events")
    def events(self, endpoint):
        return ", ".join(endpoint.enabled_events)

    @admin.display(description="Environment", ordering="environment_id")
    def tenant_environment(self, endpoint):
        return f"{endpoint.tenant_id} / {endpoint.environment_id}"

    @admin.display(description="Created", ordering="created_at")
    def created(self, endpoint):
        # customers.admin.compact_timestamp, which imports this module (a narrow cell).
        from customers.admin import compact_timestamp

        return compact_timestamp(endpoint.created_at)

    @admin.display(description="Signing secret")
    def signing_secret(self, endpoint):
        text = "Shown once, when the endpoint is created and when it is rotated."
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None:
            return format_html(
                "{} The previous secret signs too until {}.",
                text,
                expires.strftime("%Y-%m-%d %H:%M:%S %Z"),
            )
        return text

    # --- writes, through the services ------------------------------------------------------

    def save_model(self, request, obj, form, change):
        try:
            if change:
                endpoint = webhook_endpoint_update(
                    scope=obj.scope, endpoint_id=obj.pk, data=form.api_data
                )
            else:
                endpoint = webhook_endpoint_create(
                    scope=current_environment(request).scope, data=form.api_data
                )
        except (WebhookValidationError, WebhookEndpointNotFoundError) as error:
            raise SaveRefusedError(refusal_text(error)) from error
        for field in WebhookEndpoint._meta.concrete_fields:
            setattr(obj, field.attname, getattr(endpoint, field.attname))
        obj._state.adding = False

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        messages.warning(
            request,
            secret_message(
                "Its signing secret, shown this once (copy it to the receiver now):", obj.secret
            ),
        )
        return response

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is None:
            extra_context = {
                **(extra_context or {}),
                "add_environment": current_environment(request),
            }
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SaveRefusedError as refused:  # the transaction is rolled back by now
            messages.error(request, f"Not saved: {refused}")
            return HttpResponseRedirect(request.get_full_path())

    def delete_model(self, request, obj):
        webhook_endpoint_delete(scope=obj.scope, endpoint_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset.only("id", "tenant_id", "environment_id"):
            webhook_endpoint_delete(scope=endpoint.scope, endpoint_id=endpoint.pk)

    def get_deleted_objects(self, objs, request):
        """What a delete removes, counted rather than listed (Django's page would read and
        name every delivery and attempt)."""
        endpoints = list(objs)
        ids = [endpoint.pk for endpoint in endpoints]
        deliveries = WebhookDelivery.objects.filter(endpoint_id__in=ids).count()
        attempts = WebhookAttempt.objects.filter(delivery__endpoint_id__in=ids).count()
        counts = {str(self.opts.verbose_name_plural): len(endpoints)}
        if deliveries:
            counts["webhook deliveries"] = deliveries
        if attempts:
            counts["webhook attempts"] = attempts
        listed = [str(endpoint) for endpoint in endpoints]
        if deliveries:
            listed.append(f"{plural(deliveries, 'delivery', 'deliveries')} and their attempts")
        perms_needed = set()
        if not self.has_delete_permission(request):
            perms_needed.add(str(self.opts.verbose_name))
        return listed, counts, perms_needed, []

    # --- the change page: deliveries and attempts ------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        endpoint = self.get_object(request, unquote(object_id))  # as Django's views do
        if endpoint is not None:
            extra_context["deliveries_page"] = self.deliveries_page(request, endpoint)
            extra_context["deliveries_page_var"] = DELIVERIES_PAGE_VAR
        return super().change_view(request, object_id, form_url, extra_context)

    def deliveries_page(self, request, endpoint):
        """The endpoint's deliveries, newest first, a page at a time, each with its event
        (type, customer) and its attempts: three queries and a count, whatever the page."""
        attempts = WebhookAttempt.objects.order_by("attempted_at", "id")
        deliveries = (
            WebhookDelivery.objects.filter(endpoint_id=endpoint.pk)
            .select_related("event", "event__customer")
            .only(
                "id",
                "status",
                "attempt_count",
                "next_attempt_at",
                "created_at",
                "finished_at",
                "event__id",
                "event__type",
                "event__customer__id",
                "event__customer__name",
            )
            .prefetch_related(Prefetch("attempts", queryset=attempts))
            .order_by("-created_at", "-id")
        )
        page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(
            request.GET.get(DELIVERIES_PAGE_VAR)
        )
        for delivery in page.object_list:
            for attempt in delivery.attempts.all():
                text = attempt.error or attempt.response_excerpt
                attempt.excerpt = text[:EXCERPT_SHOWN] + ("…" if len(text) > EXCERPT_SHOWN else "")
                attempt.full_text = text
        return page

    def get_urls(self):
        urls = [
            path(
                "<str:object_id>/rotate_secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name="customers_webhookendpoint_rotate_secret",
            ),
            path(
                "<str:object_id>/deliveries/<int:delivery_id>/resend/",
                self.admin_site.admin_view(self.resend_view),
                name="customers_webhookendpoint_resend",
            ),
        ]
        return urls + super().get_urls()

    def endpoint_or_404(self, request, object_id) -> WebhookEndpoint:
        return get_object_or_404(self.get_queryset(request), pk=unquote(object_id))

    def change_url(self, endpoint) -> str:
        return reverse("admin:customers_webhookendpoint_change", args=[quote(endpoint.pk)])

    def rotate_secret_view(self, request, object_id):
        """GET: "Are you sure?"; POST: a new secret, shown once (the old one signs for 24 h)."""
        if not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        endpoint = self.endpoint_or_404(request, object_id)
        if request.method == "POST":
            try:
                endpoint = webhook_endpoint_rotate_secret(
                    scope=endpoint.scope, endpoint_id=endpoint.pk
                )
            except WebhookEndpointNotFoundError as error:
                raise Http404(str(error)) from None
            hours = int(SECRET_OVERLAP.total_seconds() // 3600)
            messages.warning(
                request,
                secret_message(
                    f"The secret was rotated; the previous one keeps signing for {hours} hours."
                    " The new secret, shown this once:",
                    endpoint.secret,
                ),
            )
            return HttpResponseRedirect(self.change_url(endpoint))
        context = {
            **self.admin_site.each_context(request),
            "title": "Are you sure?",
            "subtitle": None,
            "opts": self.opts,
            "object": endpoint,
            "overlap_hours": int(SECRET_OVERLAP.total_seconds() // 3600),
            "cancel_url": self.change_url(endpoint),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/customers/webhookendpoint/rotate_secret_confirmation.html", context
        )

    def resend_view(self, request, object_id, delivery_id):
        """POST: send the delivery again, at once (``webhook_delivery_resend``)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        endpoint = self.endpoint_or_404(request, object_id)
        if not WebhookDelivery.objects.filter(pk=delivery_id, endpoint_id=endpoint.pk).exists():
            raise Http404("no such delivery of this endpoint")
        try:
            delivery = webhook_delivery_resend(scope=endpoint.scope, delivery_id=delivery_id)
        except WebhookEndpointNotFoundError as error:
            raise Http404(str(error)) from None
        messages.success(
            request,
            f"Delivery {delivery.pk} ({delivery.event_id}) will be sent again at once,"
            " by the next deliver_webhooks worker to look.",
        )
        return HttpResponseRedirect(f"{self.change_url(endpoint)}#deliveries")


def refusal_text(error: Exception) -> str:
    if isinstance(error, WebhookValidationError):
        return "; ".join(f"{name} {'; '.join(problems)}" for name, problems in error.errors.items())
    return str(error)
