"""Admin pages. Operators see only their tenants' customers, everywhere; superusers see all.

The customer list runs on the same FilterSet and selector as the API (``customer_filterset``
over the operator's ``TenantScope``); every change goes through ``customers.services``.
Archive is the delete: there is no hard delete.
"""

from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from customers import admin_import, admin_webhooks  # noqa: F401  (register their pages)
from customers.access import (
    current_environment,
    lists_all_environments,
    tenant_scope_for_user,
)
from customers.admin_changelist import (
    COLUMN_SORTS,
    CustomerChangeList,
    CustomerFilters,
    CustomerRows,
    customer_listing,
    filter_form_redirect,
)
from customers.admin_saved_views import (
    save_view,
    saved_views_context,
    visible_columns,
)
from customers.events import actor_for_request, event_actor, event_changes
from customers.exports import customers_csv_response
from customers.filters import MIN_SEARCH_WORD_LENGTH, CustomerFilterSet
from customers.forms import CustomerAdminForm
from customers.models import ApiKey, Customer, CustomerStatus, Environment, Membership, Tenant
from customers.selectors import customer_events, customers_in_scope
from customers.services import (
    CustomerConflictError,
    ServiceError,
    customer_archive,
    customer_create,
    customer_erase,
    customer_restore,
    customer_update,
)
from customers.validation import CustomerValidationError

CHILDREN_PER_PAGE = 20
# The archive confirmation names at most this many of the customers it will archive.
ARCHIVE_LISTED = 100
HISTORY_PER_PAGE = 50
# Shown only when the list spans several environments (one column: tenant / environment).
SCOPE_COLUMNS = ("tenant_environment",)


def compact_timestamp(value) -> str:
    """`2024-02-10`, the full timestamp on hover: a list cell that stays narrow."""
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        local.strftime("%Y-%m-%d"),
    )


def breakable_email(email: str | None):
    """The address, allowed to wrap after its `@` and the dots of its domain: a narrow
    column that still reads well."""
    if not email or "@" not in email:
        return email
    local, domain = email.rsplit("@", 1)
    labels = domain.split(".")
    return format_html(
        "{}@<wbr>{}",
        local,
        format_html_join(mark_safe(".<wbr>"), "{}", ((label,) for label in labels)),
    )


def breakable_id(value: str):
    """An id allowed to wrap after each of its underscores (`env_<wbr>demo_<wbr>production`)."""
    parts = value.split("_")
    return format_html_join(mark_safe("_<wbr>"), "{}", ((part,) for part in parts))


@dataclass(frozen=True)
class ConfirmedAction:
    """An action that asks first: its confirmation page, and the word for what it does."""

    verb: str
    template: str


ARCHIVE = ConfirmedAction("archived", "admin/customers/customer/archive_confirmation.html")
ERASE = ConfirmedAction("erased", "admin/customers/customer/erase_confirmation.html")
# What an erasure changes, as the change message of the admin's log names it.
ERASED_FIELDS = ("name", "email", "address", "metadata", "status")


def customers_word(count: int) -> str:
    return "customer" if count == 1 else "customers"


class SaveRefusedError(Exception):
    """The services refused a save that the form had validated (a concurrent change)."""


class ScopedAutocompleteSelect(AutocompleteSelect):
    """Parent autocomplete limited to the edited customer's environment."""

    def __init__(self, *args, environment_id: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.environment_id = environment_id

    def get_url(self):
        url = super().get_url()
        return f"{url}?environment={self.environment_id}" if self.environment_id else url


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerAdminForm
    # The scope columns last: a column's number in `o` is the same in both list modes.
    list_display = (
        "name",
        "external_id",
        "email_address",
        "status",
        "parent_link",
        "created",
        "updated",
        *SCOPE_COLUMNS,
    )
    list_display_links = ("name",)
    sortable_by = tuple(COLUMN_SORTS)
    # The list's order is the FilterSet's (CustomerChangeList.get_ordering); this one only
    # tells the column headers which column is sorted when none is chosen.
    ordering = ("-created_at",)
    # The list's one filter: every parameter, through CustomerFilterSet.
    list_filter = (CustomerFilters,)
    show_facets = admin.ShowFacets.NEVER
    search_fields = ("name",)  # the search itself is CustomerFilterSet's `q`
    search_help_text = (
        "Name, email or external id contain every word (each at least"
        f" {MIN_SEARCH_WORD_LENGTH} characters; any case)."
    )
    show_full_result_count = False
    list_per_page = 50
    autocomplete_fields = ("parent",)
    actions = ("archive_selected", "restore_selected", "erase_selected")
    readonly_fields = ("id", "tenant_id", "environment_id", "created_at", "updated_at")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "tenant_id",
                    "environment_id",
                    "external_id",
                    "name",
                    "email",
                    "status",
                    "parent",
                )
            },
        ),
        (
            "Address",
            {
                "fields": (
                    "address_line1",
                    "address_line2",
                    "address_city",
                    "address_state",
                    "address_postal_code",
                    "address_country",
                )
            },
        ),
        ("Metadata", {"fields": ("metadata",)}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    change_list_template = "admin/customers/customer/change_list.html"
    change_form_template = "admin/customers/customer/change_form.html"

    # --- who sees what -------------------------------------------------------------------

    def get_queryset(self, request):
        return customers_in_scope(scope=tenant_scope_for_user(request.user))

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changelist(self, request, **kwargs):
        return CustomerChangeList

    def get_list_display(self, request):
        """The columns `cols=` asks for (a saved view's; the name always), and the tenant and
        environment columns only when listing every environment (in one, the header names
        them)."""
        columns = visible_columns(request, self.list_display, always=self.list_display_links)
        if lists_all_environments(request):
            return columns
        return tuple(name for name in columns if name not in SCOPE_COLUMNS)

    def changelist_columns(self, request) -> list[str]:
        """The columns as the change list numbers them (see ChangeList.list_display)."""
        columns = list(self.get_list_display(request))
        if self.get_actions(request):
            columns.insert(0, "action_checkbox")
        return columns

    def lookup_allowed(self, lookup, value, request=None):
        """Every parameter of the list is CustomerFilters': the FilterSet reads it, or the list
        names it as no filter of this list. None becomes a field lookup."""
        return True

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        """Django's Paginator over CustomerRows: the first page read along with the count, the
        total counted as the API counts it (and a search's up to a limit)."""
        rows = CustomerRows(
            queryset, per_page=per_page, count_matching=customer_listing(request, self).count
        )
        return Paginator(
            rows, per_page, orphans=orphans, allow_empty_first_page=allow_empty_first_page
        )

    def get_search_results(self, request, queryset, search_term):
        """The parent autocomplete's search, through the FilterSet. The change list's search
        is the FilterSet's `q` too, which CustomerFilters applied with the other filters."""
        match = request.resolver_match
        changelist = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        if match is not None and match.url_name == changelist:
            return queryset, False
        filters = {"q": search_term} if search_term else {}
        environment_id = request.GET.get("environment")
        if environment_id:
            filters["environment"] = environment_id
        filterset = CustomerFilterSet(data=filters, queryset=queryset)
        if not filterset.is_valid():
            return queryset.none(), False
        queryset = filterset.qs
        if request.GET.get("field_name") == "parent":
            queryset = queryset.exclude(status=CustomerStatus.ARCHIVED)
        return queryset, False

    # --- list ----------------------------------------------------------------------------

    def action_checkbox(self, customer):
        # The same markup as ModelAdmin.action_checkbox, written directly: rendering a
        # widget template for each of 50 rows costs more than the rest of the row.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select"'
            ' aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            customer.pk,
            str(customer),
        )

    @admin.display(description="Email", ordering="email_key")
    def email_address(self, customer):
        return breakable_email(customer.email)

    @admin.display(description="Created", ordering="created_at")
    def created(self, customer):
        return compact_timestamp(customer.created_at)

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, customer):
        return compact_timestamp(customer.updated_at)

    # The header may break as "Envi-ronment": the column stays as narrow as its ids.
    @admin.display(description="Envi\u00adronment")
    def tenant_environment(self, customer):
        """`tenant / environment`, compactly: the tenant on its own line and small (an
        environment id is unique across tenants, so it is there to be read, not to tell them
        apart), both allowed to wrap after their underscores."""
        return format_html(
            '<span class="tenant-id">{} /</span> {}',
            breakable_id(customer.tenant_id),
            breakable_id(customer.environment_id),
        )

    @admin.display(description="Parent")
    def parent_link(self, customer):
        if not customer.parent_id:
            return "-"
        url = reverse("admin:customers_customer_change", args=[customer.parent_id])
        return format_html(
            '<a href="{}" title="{}">{}</a>', url, customer.parent_id, customer.parent.name
        )

    def changelist_view(self, request, extra_context=None):
        redirect = filter_form_redirect(request)
        if redirect is not None:
            return redirect
        extra_context = {
            **(extra_context or {}),
            "export_query": request.GET.urlencode(),
            # The header switcher offers (and, here, may show) "all of my environments".
            "switcher_offers_all": True,
            "switcher_shows_all": lists_all_environments(request),
            **saved_views_context(
                request,
                columns=[(name, self.column_label(name)) for name in self.chooseable_columns()],
                shown=self.get_list_display(request),
            ),
        }
        return super().changelist_view(request, extra_context)

    def chooseable_columns(self) -> list[str]:
        """The columns a saved view may show or hide (the name, which links, is always shown)."""
        return [
            name
            for name in self.list_display
            if name not in self.list_display_links and name not in SCOPE_COLUMNS
        ]

    def column_label(self, name: str) -> str:
        attribute = getattr(self, name, None)
        label = getattr(attribute, "short_description", None)
        if label:
            return str(label)
        return str(Customer._meta.get_field(name).verbose_name)

    # --- edit ----------------------------------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        environment = obj.environment if obj else current_environment(request)
        form_class.scope = environment.scope if environment else None
        widget = form_class.base_fields["parent"].widget
        inner = getattr(widget, "widget", widget)
        if isinstance(inner, AutocompleteSelect):
            scoped = ScopedAutocompleteSelect(
                inner.field,
                self.admin_site,
                attrs=inner.attrs,
                environment_id=environment.pk if environment else None,
            )
            if hasattr(widget, "widget"):
                widget.widget = scoped
            else:
                form_class.base_fields["parent"].widget = scoped
        return form_class

    def save_model(self, request, obj, form, change):
        data = form.api_fields()
        try:
            if change:
                customer = customer_update(
                    scope=obj.scope, customer_id=obj.pk, data=data, actor=actor_for_request(request)
                )
            else:
                environment = current_environment(request)
                customer = customer_create(
                    scope=environment.scope, data=data, actor=actor_for_request(request)
                )
        except (CustomerValidationError, CustomerConflictError, ServiceError) as error:
            # A concurrent write got there between the form's validation and this save.
            raise SaveRefusedError(str(error)) from error
        for field in Customer._meta.concrete_fields:
            setattr(obj, field.attname, getattr(customer, field.attname))
        obj._state.adding = False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SaveRefusedError as refused:  # the transaction is rolled back by now
            messages.error(request, f"Not saved: {refused}")
            return HttpResponseRedirect(request.get_full_path())

    def history_view(self, request, object_id, extra_context=None):
        """A customer's history is its event log: every change made through the API, these
        pages or a command, who made it and what it changed, newest first."""
        customer = self.get_object(request, unquote(object_id))  # links quote ids, as Django's
        if customer is None or not self.has_view_or_change_permission(request, customer):
            messages.warning(request, "That customer is not one of your tenants'.")
            return HttpResponseRedirect(reverse("admin:customers_customer_changelist"))
        events = customer_events(scope=customer.scope, customer_id=customer.pk)
        page = Paginator(events, HISTORY_PER_PAGE).get_page(request.GET.get(PAGE_VAR))
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {customer}",
            "subtitle": None,
            "object": customer,
            "opts": self.opts,
            "module_name": str(self.opts.verbose_name_plural).capitalize(),
            "page": page,
            "entries": [
                {"event": event, "actor": event_actor(event), "changes": event_changes(event)}
                for event in page
            ],
            "page_var": PAGE_VAR,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/customers/customer/object_history.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        customer = self.get_object(request, unquote(object_id))  # links quote ids, as Django's
        if customer is not None:
            children = customers_in_scope(scope=customer.scope).filter(parent_id=customer.pk)
            page = Paginator(
                children.order_by("name_key", "id").only("id", "name", "external_id", "status"),
                CHILDREN_PER_PAGE,
            ).get_page(request.GET.get("children_page"))
            extra_context["children_page"] = page
        return super().change_view(request, object_id, form_url, extra_context)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and current_environment(request) is not None

    def get_fieldsets(self, request, obj=None):
        """On the add page, none of what the server sets (id, scope, timestamps): the page
        says instead where the customer will be created."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None:
            return fieldsets
        kept = []
        for name, options in fieldsets:
            fields = [field for field in options["fields"] if field not in self.readonly_fields]
            if fields:
                kept.append((name, {**options, "fields": fields}))
        return kept

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "add_environment": current_environment(request)}
        return super().add_view(request, form_url, extra_context)

    # --- archive and restore ---------------------------------------------------------------

    @admin.action(description="Archive the selected customers", permissions=["change"])
    def archive_selected(self, request, queryset):
        # As delete_selected: an intermediate page lists them, its form POSTs `post=yes`.
        if request.POST.get("post") != "yes":
            return self.archive_confirmation(request, queryset)
        self.apply_to_each(request, queryset, customer_archive, "archived")
        return None

    @admin.action(description="Restore the selected customers", permissions=["change"])
    def restore_selected(self, request, queryset):
        self.apply_to_each(request, queryset, customer_restore, "restored")

    @admin.action(
        description="Erase personal data of the selected customers", permissions=["change"]
    )
    def erase_selected(self, request, queryset):
        # Irreversible: always asked first, as archive_selected.
        if request.POST.get("post") != "yes":
            return self.archive_confirmation(request, queryset, action=ERASE)
        self.apply_to_each(request, queryset, customer_erase, "erased", fields=ERASED_FIELDS)
        return None

    def apply_to_each(self, request, queryset, service, verb: str, fields=("status",)) -> None:
        done, refused = 0, []
        for customer in queryset.select_related(None).only(
            "id", "tenant_id", "environment_id", "name"
        ):
            try:
                changed = service(
                    scope=customer.scope, customer_id=customer.pk, actor=actor_for_request(request)
                )
            except (CustomerConflictError, CustomerValidationError) as error:
                refused.append(f"{customer.name}: {error}")
                continue
            self.log_change(request, changed, [{"changed": {"fields": list(fields)}}])
            done += 1
        if done:
            messages.success(request, f"{done} {customers_word(done)} {verb}.")
        for reason in refused:
            messages.error(request, f"Not {verb}: {reason}")

    def get_urls(self):
        urls = [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="customers_customer_export",
            ),
            path(
                "views/save/",
                self.admin_site.admin_view(save_view),
                name="customers_customer_save_view",
            ),
            path(
                "<str:object_id>/archive/",
                self.admin_site.admin_view(self.archive_view),
                name="customers_customer_archive",
            ),
            path(
                "<str:object_id>/restore/",
                self.admin_site.admin_view(self.restore_view),
                name="customers_customer_restore",
            ),
            path(
                "<str:object_id>/erase/",
                self.admin_site.admin_view(self.erase_view),
                name="customers_customer_erase",
            ),
        ]
        return urls + super().get_urls()

    def status_view(
        self, request, object_id, service, verb, *, confirm: bool = False, action=None, fields=None
    ):
        """POST: apply ``service`` (archive, restore, erase) to the customer. A GET, when
        ``confirm``, asks first (``action``'s page, whose form POSTs here); otherwise it is not
        allowed."""
        if request.method != "POST" and not confirm:
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        customer = get_object_or_404(self.get_queryset(request), pk=object_id)
        one = self.get_queryset(request).filter(pk=customer.pk)
        if request.method != "POST":
            return self.archive_confirmation(request, one, customer=customer, action=action)
        self.apply_to_each(request, one, service, verb, fields=fields or ("status",))
        return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))

    def archive_confirmation(self, request, queryset, *, customer=None, action=None):
        """Django admin's "Are you sure?" page for archiving ``customer`` or, from the bulk
        action, the selected customers (at most ARCHIVE_LISTED of them named); with
        ``action=ERASE``, the same page for erasing their personal data."""
        action = action or ARCHIVE
        listed = list(
            queryset.select_related(None)
            .only("id", "name", "external_id", "status", "tenant_id", "environment_id")
            .order_by("name_key", "id")[: ARCHIVE_LISTED + 1]
        )
        if not listed:  # the selection is no longer there (or never was, for this user)
            messages.warning(request, f"None of the selected customers can be {action.verb}.")
            return None
        count = len(listed) if len(listed) <= ARCHIVE_LISTED else queryset.count()
        context = {
            **self.admin_site.each_context(request),
            "title": "Are you sure?",
            "subtitle": None,
            "opts": self.opts,
            "object": customer,
            "customers": listed[:ARCHIVE_LISTED],
            "count": count,
            "count_word": customers_word(count),
            "unlisted": max(count - ARCHIVE_LISTED, 0),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            # The action's own form fields, posted again with `post=yes`.
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across") == "1",
            "cancel_url": (
                reverse("admin:customers_customer_change", args=[customer.pk])
                if customer is not None
                else request.get_full_path()
            ),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, action.template, context)

    def archive_view(self, request, object_id):
        return self.status_view(request, object_id, customer_archive, "archived", confirm=True)

    def restore_view(self, request, object_id):
        return self.status_view(request, object_id, customer_restore, "restored")

    def erase_view(self, request, object_id):
        return self.status_view(
            request,
            object_id,
            customer_erase,
            "erased",
            confirm=True,
            action=ERASE,
            fields=ERASED_FIELDS,
        )

    # --- export --------------------------------------------------------------------------

    def export_view(self, request):
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        # The list's rule: a specific environment becomes the current one (a refusal is
        # shown on the list, not after a download of something else).
        redirect = filter_form_redirect(
            request, refused_url=reverse("admin:customers_customer_changelist")
        )
        if redirect is not None:
            return redirect
        # The list's parameters and problems, exactly (an unknown parameter exports nothing).
        listing = customer_listing(request, self)
        if listing.errors:
            for name, problems in listing.errors.items():
                messages.error(request, f"{name}: {'; '.join(problems)}")
            return HttpResponseRedirect(reverse("admin:customers_customer_changelist"))
        queryset = listing.filterset.qs
        return customers_csv_response(queryset, filename="customers.csv")


class SuperuserOnlyAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Tenant)
class TenantAdmin(SuperuserOnlyAdmin):
    list_display = ("id", "name", "created_at")


@admin.register(Environment)
class EnvironmentAdmin(SuperuserOnlyAdmin):
    list_display = ("id", "tenant", "name", "created_at")


@admin.register(Membership)
class MembershipAdmin(SuperuserOnlyAdmin):
    list_display = ("user", "tenant", "created_at")


@admin.register(ApiKey)
class ApiKeyAdmin(SuperuserOnlyAdmin):
    list_display = (
        "prefix",
        "name",
        "tenant",
        "environment",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("prefix", "key_hash", "tenant", "environment", "created_at", "last_used_at")

    def has_add_permission(self, request):
        # The raw key is shown once, by `manage.py create_api_key`.
        return False
