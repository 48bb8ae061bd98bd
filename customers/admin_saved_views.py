"""Saved views in the admin: pick one from the customer list, save the list as it is (its
filters, search, sort and visible columns), and manage them (rename, share, delete: only the
owner, or a superuser) on their own admin pages.

A view is applied by opening the list with its parameters (the link each view has), so the
list's own rules and form errors apply: a view whose parameters no longer validate shows
the list's errors, and is marked in the list of views.
"""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect, QueryDict
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from customers.access import current_environment, tenant_scope_for_user
from customers.models import SavedView, Tenant
from customers.saved_views import (
    SavedViewError,
    may_change,
    saved_view_create,
    saved_view_delete,
    saved_view_params,
    saved_view_problems,
    saved_view_update,
    views_for_user,
)
from customers.scope import TenantScope

# The change list's own parameters for views: the visible columns, and which saved view the
# list was opened from (so that its owner can update it with the list as it is now).
COLUMNS_VAR = "cols"
SAVED_VIEW_VAR = "saved_view"


def user_tenant_ids(user) -> list[str]:
    scope = tenant_scope_for_user(user)
    if scope.is_unrestricted:
        return list(Tenant.objects.values_list("id", flat=True))
    return sorted(scope.tenant_ids)


def asked_columns(query: QueryDict) -> list[str]:
    """The columns `cols=a,b` (or `cols=a&cols=b`, the column chooser's checkboxes) names."""
    names = [name for value in query.getlist(COLUMNS_VAR) for name in value.split(",") if name]
    return list(dict.fromkeys(names))


def visible_columns(request: HttpRequest, columns: tuple[str, ...], *, always: tuple[str, ...]):
    """The list's columns that `cols=` asks for (in the list's own order; ``always`` kept),
    or all of them."""
    asked = asked_columns(request.GET)
    if not asked:
        return columns
    return tuple(name for name in columns if name in asked or name in always)


def view_url(view: SavedView) -> str:
    query = [(name, value) for name, values in (view.params or {}).items() for value in values]
    if view.columns:
        query.append((COLUMNS_VAR, ",".join(view.columns)))
    query.append((SAVED_VIEW_VAR, view.slug))
    return f"{reverse('admin:customers_customer_changelist')}?{urlencode(query)}"


def saved_views_context(request: HttpRequest, *, columns: list[tuple[str, str]], shown) -> dict:
    """What the change list's "Views" box shows: the views to pick (with their problems),
    the one the list was opened from, and the column choices."""
    scope = tenant_scope_for_user(request.user)
    views = []
    for view in views_for_user(request.user, tenant_ids=user_tenant_ids(request.user)):
        problems = saved_view_problems(view, scope=scope)
        views.append(
            {
                "view": view,
                "url": view_url(view),
                "problems": [
                    f"{name}: {message}" for name, ms in problems.items() for message in ms
                ],
                "mine": may_change(view, request.user),
            }
        )
    slug = request.GET.get(SAVED_VIEW_VAR)
    current = next((each for each in views if each["view"].slug == slug), None)
    query = request.GET.copy()
    for name in (SAVED_VIEW_VAR, COLUMNS_VAR):
        query.pop(name, None)
    return {
        "saved_views": views,
        "current_saved_view": current,
        "save_view_url": reverse("admin:customers_customer_save_view"),
        "save_view_query": request.GET.urlencode(),
        "column_choices": [
            {"name": name, "label": label, "shown": name in shown} for name, label in columns
        ],
        "columns_kept_params": [(name, value) for name in query for value in query.getlist(name)],
    }


def save_view(request: HttpRequest):
    """POST from the change list: a new view of the current list, or (`update=<slug>`) the
    list as it is now saved into one's own view."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm("customers.view_customer"):
        raise PermissionDenied
    query = QueryDict(request.POST.get("query", ""))
    params = saved_view_params(query)
    columns = asked_columns(query)
    back = f"{reverse('admin:customers_customer_changelist')}?{query.urlencode()}"
    try:
        if request.POST.get("update"):
            view = views_for_user(request.user, tenant_ids=user_tenant_ids(request.user)).get(
                slug=request.POST["update"]
            )
            saved_view_update(view=view, user=request.user, params=params, columns=columns)
            messages.success(request, f"The view “{view.name}” now shows this list.")
        else:
            environment = current_environment(request)
            if environment is None:
                raise SavedViewError("No environment to save the view in.")
            view = saved_view_create(
                user=request.user,
                tenant_id=environment.tenant_id,
                name=request.POST.get("name", ""),
                params=params,
                columns=columns,
                shared=request.POST.get("shared") == "on",
            )
            messages.success(
                request,
                f"Saved the view “{view.name}”"
                + (
                    " (shared with your tenant's staff and its API keys as view=" + view.slug + ")."
                    if view.shared
                    else " (only you see it)."
                ),
            )
    except SavedView.DoesNotExist:
        messages.error(request, "No such view of yours.")
        return HttpResponseRedirect(back)
    except SavedViewError as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(back)
    return HttpResponseRedirect(view_url(view))


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    """The views one can pick: rename, share or unshare, delete (the owner, or a superuser).
    Views are made from the customer list ("Save this view")."""

    list_display = ("name", "slug", "shared", "owner_name", "tenant", "updated_at", "state")
    list_display_links = ("name",)
    fields = ("name", "shared", "slug", "tenant", "owner", "saved_parameters", "open_link", "state")
    readonly_fields = ("slug", "tenant", "owner", "saved_parameters", "open_link", "state")

    def get_queryset(self, request):
        return views_for_user(request.user, tenant_ids=user_tenant_ids(request.user))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_change(obj, request.user))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_change(obj, request.user))

    @admin.display(description="owner")
    def owner_name(self, view):
        return view.owner.get_username() if view.owner else "—"

    @admin.display(description="parameters")
    def saved_parameters(self, view):
        pairs = [(name, ", ".join(values)) for name, values in (view.params or {}).items()]
        if not pairs:
            return "none (the whole list)"
        return format_html_join(mark_safe("<br>"), "<code>{}</code> = {}", pairs)

    @admin.display(description="open")
    def open_link(self, view):
        return format_html('<a href="{}">Open the customer list with this view</a>', view_url(view))

    @admin.display(description="state")
    def state(self, view):
        problems = saved_view_problems(
            view, scope=TenantScope(tenant_ids=frozenset({view.tenant_id}))
        )
        if not problems:
            return "valid"
        text = "; ".join(f"{name}: {ms[0]}" for name, ms in problems.items())
        return format_html(
            '<span class="errornote saved-view-invalid">⚠ no longer valid: {}</span>', text
        )

    def save_model(self, request, obj, form, change):
        try:
            saved_view_update(view=obj, user=request.user, name=obj.name, shared=obj.shared)
        except SavedViewError as error:
            messages.error(request, str(error))

    def delete_model(self, request, obj):
        saved_view_delete(view=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for view in queryset:
            saved_view_delete(view=view, user=request.user)
