"""The customer change list: Django's ChangeList, with every list parameter read by one
CustomerFilterSet and its pages and totals read as the API reads them.

Through the admin's own hooks:

- ``CustomerFilters`` is the list's one ``list_filter`` (a ``ListFilter``). It takes every
  parameter of the query string (``CustomerAdmin.lookup_allowed`` lets them all through, and
  none is left for Django to apply as a field lookup), filters the list with the FilterSet,
  names the parameters that are not valid or not filters at all, and renders the sidebar
  form from the FilterSet's own form fields. Django sets the change list's filter state
  (``filter_specs``, ``has_filters``, ``clear_all_filters_qs``) from it, as for any filter.
- ``CustomerRows`` is what ``CustomerAdmin.get_paginator`` gives Django's ``Paginator``:
  any sliceable object with a ``count()`` will do (the Paginator's documented
  ``object_list``). Its count reads the first page along (``selectors.offset_page``, the
  API's way): a list that ends on it needs no COUNT; a longer one is counted by
  ``selectors.count_matching_for_display``; a deep page reads its ids first.
- ``CustomerChangeList`` (``ModelAdmin.get_changelist``) overrides the two methods for which
  Django has no hook: ``get_ordering`` (the FilterSet's total order, also for a column
  header's `o`) and ``get_results`` (a one-page list shows the rows its count read, where
  Django would read them again).

``customer_listing(request, model_admin)`` is a request's list parameters, read once:
the filter, the paginator and the change list all use it (kept on the request, as
``customers.access`` keeps the current environment), whichever asks first.
"""

import copy
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import (
    ALL_VAR,
    ERROR_FLAG,
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    TO_FIELD_VAR,
    ChangeList,
)
from django.contrib.admin.widgets import BaseAdminDateWidget
from django.db.models import OrderBy, QuerySet
from django.http import HttpRequest, HttpResponseRedirect, QueryDict
from django.utils.functional import cached_property
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from customers.access import (
    ALL_ENVIRONMENTS,
    ENVIRONMENT_PARAM,
    current_environment,
    environment_param_choice,
    environments_of_request,
    lists_all_environments,
    switch_environment,
    tenant_scope_for_user,
    url_without_params,
)
from customers.filters import (
    BOUND_LOOKUPS,
    SORT_COLUMNS,
    CustomerFilterSet,
    customer_ordering,
    list_sort_keys,
)
from customers.models import Customer, CustomerStatus
from customers.selectors import (
    count_matching_for_display,
    customer_filterset,
    offset_page,
)

# The admin's own parameters; every other one is a filter of CustomerFilterSet.
ADMIN_PARAMS = {ALL_VAR, ORDER_VAR, PAGE_VAR, ERROR_FLAG, IS_POPUP_VAR, TO_FIELD_VAR, IS_FACETS_VAR}
# `count=all`: a search counts every match instead of stopping at SEARCH_COUNT_LIMIT.
COUNT_VAR = "count"
# The sidebar's metadata rows, which become `metadata[KEY]=VALUE` (see filter_form_redirect).
METADATA_KEY_VAR = "metadata_key"
METADATA_VALUE_VAR = "metadata_value"
ADMIN_PARAMS |= {"_changelist_filters", COUNT_VAR, METADATA_KEY_VAR, METADATA_VALUE_VAR}
# A saved view's visible columns, and the view the list was opened from (admin_saved_views).
ADMIN_PARAMS |= {"cols", "saved_view"}
# Parameters that narrow nothing: they order the list, or name its environment (the current
# one, which the header says; `environment=all` does count as a filter).
NOT_NARROWING = frozenset({"sort", "order", ENVIRONMENT_PARAM, SEARCH_VAR})

# The list's sortable columns -> the sort (CustomerFilterSet's `sort`) each one asks for.
COLUMN_SORTS = {
    "name": "name",
    "external_id": "external_id",
    "email_address": "email",
    "status": "status",
    "created": "created_at",
    "updated": "updated_at",
}
# The change list reads only the parent's name.
PARENT_UNUSED_FIELDS = [
    f"parent__{each.name}"
    for each in Customer._meta.concrete_fields
    if each.name not in ("id", "name")
]
LISTING_ATTRIBUTE = "_crm_customer_listing"
NOT_A_FILTER = "is not a filter of this list"


def changelist_filters(request: HttpRequest, columns: list[str]) -> dict[str, list[str]]:
    """The changelist's query string minus the admin's own parameters, with `o` as sort/order.

    ``columns`` are the change list's columns as Django numbers them in `o` (the action
    checkbox first when there are actions).
    """
    filters = {name: request.GET.getlist(name) for name in request.GET if name not in ADMIN_PARAMS}
    # The list shows the current environment (the switcher's), like the browsable API;
    # `environment=all`, every environment of one's tenants. A specific id is made the
    # current environment before this (see filter_form_redirect); should one reach here
    # (a POST), it stays a filter within the operator's tenants.
    filters.pop(ENVIRONMENT_PARAM, None)
    choice = environment_param_choice(request)
    if choice and not lists_all_environments(request):
        filters[ENVIRONMENT_PARAM] = [choice]
    elif not choice:
        environment = current_environment(request)
        if environment is not None:
            filters[ENVIRONMENT_PARAM] = [environment.pk]
    column_number = request.GET.get(ORDER_VAR, "").split(".")[0]
    if column_number.lstrip("-").isdigit() and "sort" not in filters:
        index = int(column_number.lstrip("-"))
        sort = COLUMN_SORTS.get(columns[index]) if 0 <= index < len(columns) else None
        if sort in SORT_COLUMNS:
            filters["sort"] = [sort]
            filters["order"] = ["desc" if column_number.startswith("-") else "asc"]
    return filters


def filters_for_form(filters: dict[str, list[str]]) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, values in filters.items():
        data.setlist(name, values)
    return data


def is_list_param(name: str) -> bool:
    """Whether CustomerFilterSet reads it: a filter, `sort`, `order` or `metadata[KEY]`."""
    return name in CustomerFilterSet.parameter_names() or CustomerFilterSet.is_metadata_param(name)


class CustomerListing:
    """A change list request's parameters, read once: the filters, the FilterSet that parsed
    them, the problems to show, and how the list is ordered and counted."""

    def __init__(self, request: HttpRequest, columns: list[str]):
        self.scope = tenant_scope_for_user(request.user)
        self.filters = changelist_filters(request, columns)
        self.all_environments = lists_all_environments(request)
        self.exact_count = request.GET.get(COUNT_VAR) == "all"
        self.filterset = customer_filterset(
            scope=self.scope, filters=filters_for_form(self.filters)
        )
        self.errors: dict[str, list[str]] = (
            {} if self.filterset.is_valid() else dict(self.filterset.errors)
        )
        for name in sorted(name for name in self.filters if not is_list_param(name)):
            self.errors[name] = [NOT_A_FILTER]

    @property
    def in_force(self) -> bool:
        """Whether anything narrows the list (the sidebar says "active" and offers to clear
        it): every environment, or a filter with a value (the search is the search bar's)."""
        return self.all_environments or any(
            any(values) for name, values in self.filters.items() if name not in NOT_NARROWING
        )

    def rows(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` (the change list's, ModelAdmin.get_queryset's scope) filtered and ordered
        by the FilterSet; nothing when a parameter is refused (an unfiltered list would pass
        for a filtered one)."""
        if self.errors:
            return queryset.none()
        # The parent column shows the parent's name: one join, not a query per row.
        rows = self.filterset.filter_queryset(queryset)
        return rows.select_related("parent").defer(*PARENT_UNUSED_FIELDS)

    @property
    def ordering(self) -> list[OrderBy]:
        cleaned = getattr(self.filterset.form, "cleaned_data", {})
        return customer_ordering(list_sort_keys(cleaned))

    def count(self) -> tuple[int, bool]:
        """(how many match, whether the search stopped counting): see
        selectors.count_matching_for_display."""
        if self.errors:
            return 0, False
        return count_matching_for_display(self.filterset, scope=self.scope, exact=self.exact_count)


def customer_listing(request: HttpRequest, model_admin) -> CustomerListing:
    """The request's CustomerListing, made by whichever part of the change list asks first."""
    listing = getattr(request, LISTING_ATTRIBUTE, None)
    if listing is None:
        listing = CustomerListing(request, model_admin.changelist_columns(request))
        setattr(request, LISTING_ATTRIBUTE, listing)
    return listing


# --- the sidebar: the FilterSet's form fields, as the admin shows them ----------------------


@dataclass
class FilterInput:
    label: str
    widget: forms.Widget
    name: str
    value: object
    attrs: dict
    errors: forms.utils.ErrorList

    @property
    def id(self) -> str:
        return self.widget.attrs["id"]

    @property
    def html(self) -> str:
        return widget_html(self.widget, self.name, self.value, self.attrs)


# The widget templates widget_html writes directly (Django's markup; a test compares them).
INPUT_TEMPLATES = frozenset({"django/forms/widgets/text.html", "django/forms/widgets/date.html"})
SELECT_TEMPLATE = "django/forms/widgets/select.html"


def attrs_html(attrs: dict) -> str:
    """Django's django/forms/widgets/attrs.html."""
    return "".join(
        f" {conditional_escape(name)}"
        if value is True
        else f' {conditional_escape(name)}="{conditional_escape(value)}"'
        for name, value in attrs.items()
        if value is not False
    )


def widget_html(widget: forms.Widget, name: str, value, attrs: dict) -> SafeString:
    """``widget.render(name, value, attrs)``, written directly for text and date inputs and
    selects: the sidebar's dozen widgets rendered through their templates cost a fifth of
    the list's time. Any other widget is rendered by Django."""
    if widget.template_name not in INPUT_TEMPLATES and widget.template_name != SELECT_TEMPLATE:
        return widget.render(name, value, attrs)
    context = widget.get_context(name, value, attrs)["widget"]
    if widget.template_name in INPUT_TEMPLATES:
        shown = context["value"]
        value_attr = "" if shown is None else f' value="{conditional_escape(shown)}"'
        html = (
            f'<input type="{conditional_escape(context["type"])}"'
            f' name="{conditional_escape(context["name"])}"{value_attr}'
            f"{attrs_html(context['attrs'])}>"
        )
        return mark_safe(html)  # noqa: S308 (every value is escaped above)
    parts = [f'<select name="{conditional_escape(context["name"])}"{attrs_html(context["attrs"])}>']
    for group_name, options, _ in context["optgroups"]:
        if group_name:
            parts.append(f'\n  <optgroup label="{conditional_escape(group_name)}">')
        for option in options:
            parts.append(
                f'\n  <option value="{conditional_escape(option["value"])}"'
                f"{attrs_html(option['attrs'])}>{conditional_escape(option['label'])}</option>\n"
            )
        if group_name:
            parts.append("\n  </optgroup>")
    parts.append("\n</select>")
    return mark_safe("".join(parts))  # noqa: S308 (every value is escaped above)


@dataclass
class FilterGroup:
    inputs: list[FilterInput]
    legend: str = ""
    help: str = ""


# The timestamps' bounds in the sidebar: (field, legend, id stem); From and Before always,
# After and Up to only when given (a link's, say).
TIMESTAMPS = (
    ("created_at", "Created", "filter-created"),
    ("updated_at", "Updated", "filter-updated"),
)
BOUND_LABELS = {"gte": "From", "lt": "Before", "gt": "After", "lte": "Up to"}
BOUND_IDS = {"gte": "after", "lt": "before", "gt": "gt", "lte": "lte"}
SHOWN_BOUNDS = ("gte", "lt")
BOUND_HELP = "A date is 00:00 UTC; a time needs Z or an offset (2024-02-10T09:30:00+01:00)."
# Parameters the sidebar keeps without showing them (the search bar and the column headers
# show these), so that applying the filters does not lose them.
KEPT_HIDDEN = (SEARCH_VAR, ORDER_VAR, "sort", "order", IS_POPUP_VAR, TO_FIELD_VAR)


class MetadataFilterRowsWidget(forms.Widget):
    """The `metadata` filter as key and value rows: the pairs in force, then a blank row.

    Its value is the FilterSet widget's (`metadata[KEY]` parameters: (name, KEY, values));
    the rows submit `metadata_key` / `metadata_value`, which filter_form_redirect turns into
    `metadata[KEY]=VALUE`."""

    template_name = "customers/widgets/metadata_filter_rows.html"

    def format_value(self, value):
        return value

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rows = [(key, item) for _, key, values in value or [] for item in values]
        context["widget"]["rows"] = [*rows, ("", "")]
        context["widget"]["key_name"] = METADATA_KEY_VAR
        context["widget"]["value_name"] = METADATA_VALUE_VAR
        return context


class CustomerFilters(admin.ListFilter):
    """Every list parameter, through CustomerFilterSet: the change list's only filter."""

    title = "customers"
    template = "admin/customers/customer/filter_form.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.listing = customer_listing(request, model_admin)
        # Every parameter is this filter's: the FilterSet reads it, or the list names it as
        # no filter of this list. None is left for Django to apply as a field lookup.
        for name in list(params):
            self.used_parameters[name] = params.pop(name)

    def has_output(self) -> bool:
        return True

    def choices(self, changelist):
        return []  # a form, not a list of links

    def expected_parameters(self):
        return list(self.used_parameters)

    def queryset(self, request, queryset):
        return self.listing.rows(queryset)

    @property
    def errors(self) -> dict[str, list[str]]:
        return self.listing.errors

    @property
    def in_force(self) -> bool:
        return self.listing.in_force

    # --- the form ---------------------------------------------------------------------------

    def sidebar_input(
        self, name: str, label: str, widget: forms.Widget, *, value=None
    ) -> FilterInput:
        """A field of the FilterSet's form in ``widget`` (which carries the element's id), as
        ``BoundField.as_widget`` renders it: the value the request gave (or ``value``), the
        field's attributes (aria-invalid when it has errors), its errors under it."""
        bound = self.listing.filterset.form[name]
        return FilterInput(
            label=label,
            widget=widget,
            name=bound.html_name,
            value=bound.value() if value is None else value,
            attrs=bound.build_widget_attrs({}, widget),
            errors=bound.errors,
        )

    def text_input(self, name: str, label: str, element_id: str) -> FilterInput:
        """A field in its own widget (which formats its values: a list as `a,b`)."""
        bound = self.listing.filterset.form[name]
        widget = copy.copy(bound.field.widget)  # this form's widget, given its own attrs
        widget.attrs = {**widget.attrs, "id": element_id}
        return self.sidebar_input(name, label, widget)

    def select_input(self, name: str, label: str, element_id: str, choices, **kwargs):
        widget = forms.Select(choices=choices, attrs={"id": element_id})
        return self.sidebar_input(name, label, widget, **kwargs)

    @cached_property
    def sidebar(self) -> list[FilterGroup]:
        """The sidebar's inputs, in groups: one per field of the FilterSet's form that the
        sidebar lays out, then any other filter in force."""
        form = self.listing.filterset.form
        environments = environments_of_request(self.request)
        tenants = sorted({environment.tenant_id for environment in environments})
        current = current_environment(self.request)
        by_tenant = [
            (tenant, [(each.pk, each.pk) for each in environments if each.tenant_id == tenant])
            for tenant in tenants
        ]
        statuses = [("", "All"), *CustomerStatus.choices]
        inputs = [
            self.select_input("status", "Status", "filter-status", statuses),
            # The same choice as the header's switcher: choosing one here switches there too.
            self.select_input(
                ENVIRONMENT_PARAM,
                "Environment",
                "filter-environment",
                [(ALL_ENVIRONMENTS, "All environments"), *by_tenant],
                value=ALL_ENVIRONMENTS
                if self.listing.all_environments
                else (current.pk if current else ""),
            ),
        ]
        if self.listing.all_environments or form["tenant"].data:
            all_tenants = [("", "All tenants"), *((tenant, tenant) for tenant in tenants)]
            inputs.append(self.select_input("tenant", "Tenant", "filter-tenant", all_tenants))
        has_parent = [("", "Either"), ("true", "Yes"), ("false", "No")]
        inputs += [
            self.select_input("has_parent", "Has parent", "filter-has-parent", has_parent),
            self.text_input("parent_customer_ids", "Parent id", "filter-parent"),
            self.text_input("email", "Email (exact)", "filter-email"),
            self.text_input("external_id", "External id (exact)", "filter-external-id"),
        ]
        groups = [FilterGroup(inputs)]
        laid_out = {"status", ENVIRONMENT_PARAM, "tenant", "has_parent", "parent_customer_ids"}
        laid_out |= {"email", "external_id", "metadata", *KEPT_HIDDEN}
        for timestamp, legend, id_stem in TIMESTAMPS:
            bounds = []
            for lookup in BOUND_LOOKUPS:
                name = f"{timestamp}[{lookup}]"
                laid_out.add(name)
                if lookup in SHOWN_BOUNDS or form[name].data or form[name].errors:
                    widget = BaseAdminDateWidget(attrs={"id": f"{id_stem}-{BOUND_IDS[lookup]}"})
                    bounds.append(self.sidebar_input(name, BOUND_LABELS[lookup], widget))
            help_text = BOUND_HELP if timestamp == TIMESTAMPS[0][0] else ""
            groups.append(FilterGroup(bounds, legend=legend, help=help_text))
        metadata = MetadataFilterRowsWidget(attrs={"id": "filter-metadata"})
        groups.append(
            FilterGroup(
                [self.sidebar_input("metadata", "", metadata)],
                legend="Metadata",
                help="Exact values; every pair must match.",
            )
        )
        # Any other filter in force (a link's `customer_ids`, say): shown, so that it can be
        # seen and changed.
        others = [
            self.text_input(name, name, f"filter-{name}")
            for name in form.fields
            if name not in laid_out and form[name].data
        ]
        if others:
            groups.append(FilterGroup(others, legend="Also"))
        return groups

    @property
    def kept_params(self) -> list[tuple[str, str]]:
        """(name, value) of the parameters the sidebar keeps as hidden inputs."""
        return [
            (name, value)
            for name in KEPT_HIDDEN
            for value in self.request.GET.getlist(name)
            if value
        ]

    @property
    def media(self) -> forms.Media:
        return BaseAdminDateWidget().media


class CustomerRows:
    """The change list's rows as Django's Paginator reads them (a sliceable object with a
    ``count()``, the Paginator's documented ``object_list``).

    ``count()`` reads the first page and one row more (selectors.offset_page): a list that
    ends on it gives its total without a COUNT, and page 1 is those rows; otherwise
    ``count_matching`` ((count, capped): CustomerListing.count) counts it. Other pages are
    read by offset_page too (a deep one by its ids first).
    """

    def __init__(self, queryset: QuerySet, *, per_page: int, count_matching):
        self.queryset = queryset
        self.per_page = per_page
        self.count_matching = count_matching
        self.count_is_capped = False
        self.first_page: list | None = None
        self.total: int | None = None

    def count(self) -> int:
        if self.total is None:
            self.first_page, self.total = offset_page(
                self.queryset, offset=0, limit=self.per_page, count=self.counted
            )
        return self.total

    def counted(self) -> int:
        total, self.count_is_capped = self.count_matching()
        return total

    def __getitem__(self, key: slice) -> list:
        start, stop = key.start or 0, key.stop
        total = self.count()
        if start == 0 and stop <= self.per_page:
            return self.first_page[:stop]
        if self.count_is_capped:  # the total is not exact: no reading from the far end
            return list(self.queryset[key])
        rows, _ = offset_page(self.queryset, offset=start, limit=stop - start, count=lambda: total)
        return rows


class CustomerChangeList(ChangeList):
    """Django's change list; filtered by CustomerFilters, paged by CustomerRows."""

    @property
    def customer_filters(self) -> CustomerFilters:
        return next(spec for spec in self.filter_specs if isinstance(spec, CustomerFilters))

    def get_ordering(self, request, queryset):
        """The FilterSet's total order (`sort`, then `id`), which a column header's `o`
        chooses too (changelist_filters), rather than Django's column ordering: the same
        order as the API's, ties included, and `name` / `email` case-insensitively."""
        return customer_listing(request, self.model_admin).ordering

    def get_results(self, request):
        super().get_results(request)
        if not self.multi_page:
            # A one-page list: the rows its count read (Django would query them again).
            self.result_list = self.paginator.page(1).object_list

    @property
    def result_count_is_capped(self) -> bool:
        """A search with more matches than it counts shows "1000+" (see the templates)."""
        return self.paginator.object_list.count_is_capped

    @property
    def count_all_url(self) -> str:
        return self.get_query_string({COUNT_VAR: "all"})


# --- the filter form's own URL -----------------------------------------------------------


def with_metadata_rows(url: str, request: HttpRequest) -> str:
    """``url`` as the list keeps it after the sidebar form: its metadata rows as
    `metadata[KEY]=VALUE` parameters, which replace those it had (the rows are all of them),
    and without the empty values the form sends for its empty inputs (an empty value counts
    as absent)."""
    keys = request.GET.getlist(METADATA_KEY_VAR)
    values = request.GET.getlist(METADATA_VALUE_VAR)
    parts = urlsplit(url)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if value
        and name not in (METADATA_KEY_VAR, METADATA_VALUE_VAR, PAGE_VAR)
        and not CustomerFilterSet.is_metadata_param(name)
    ]
    pairs = zip(keys, values + [""] * (len(keys) - len(values)), strict=False)
    query += [(f"metadata[{key}]", value) for key, value in pairs if key or value]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


def filter_form_redirect(request: HttpRequest, *, refused_url: str | None = None):
    """For a GET from the filter form (or an old link) that says what the list's URL keeps
    otherwise, a redirect to the list's own URL: a specific environment (`environment=<id>`)
    becomes the current one, as the switcher does (one not the user's is refused with the
    switcher's message), and the metadata rows become `metadata[KEY]=VALUE` (with_metadata_rows).
    None otherwise.
    """
    if request.method not in ("GET", "HEAD"):
        return None
    choice = environment_param_choice(request)
    switches = bool(choice) and not lists_all_environments(request)
    has_rows = METADATA_KEY_VAR in request.GET or METADATA_VALUE_VAR in request.GET
    if not switches and not has_rows:
        return None
    url = request.get_full_path()
    if switches:
        url = url_without_params(url, (ENVIRONMENT_PARAM, PAGE_VAR))
        if switch_environment(request, choice) is None:
            messages.error(request, "That environment is not one of yours.")
            url = refused_url or url
    if has_rows:
        url = with_metadata_rows(url, request)
    return HttpResponseRedirect(url)
