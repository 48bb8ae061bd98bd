"""Saved views: a customer list's parameters and columns under a name.

The operators save them from the admin's customer list (private, or shared with their
tenant's staff); the API applies a shared one with `view=<slug>` on the list and the export.
What a view holds is exactly the list's query parameters, so applying one is building the
query string the list would have had (``with_saved_view``): every rule of the list applies,
and a saved parameter that no longer validates is named as the view's.
"""

from collections.abc import Iterable, Mapping

from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.text import slugify

from customers.filters import CustomerFilterSet
from customers.models import SavedView
from customers.scope import Scope, TenantScope
from customers.text import abbreviated, text_problem

VIEW_PARAM = "view"
MAX_NAME_LENGTH = 100
# The list's paging is the caller's, never a view's; so is its scope (the API key's, the
# admin's current environment).
UNSAVED_PARAMS = frozenset(
    {"limit", "offset", "cursor", "expand", "format", VIEW_PARAM, "tenant", "environment"}
)


class SavedViewError(Exception):
    """A view that cannot be used or changed; the message says why."""


class SavedViewPermissionError(SavedViewError):
    """Only the owner (or a superuser) may change or delete a view."""


def saved_view_params(query: Mapping) -> dict[str, list[str]]:
    """What a view keeps of a query string: the list's own parameters (filters, search,
    sort, order, `metadata[KEY]`), never its paging, with their values as given."""
    getlist = query.getlist if hasattr(query, "getlist") else lambda name: [query[name]]
    params = {}
    for name in query:
        readable = name in CustomerFilterSet.parameter_names() or (
            CustomerFilterSet.is_metadata_param(name)
        )
        if readable and name not in UNSAVED_PARAMS:
            values = [value for value in getlist(name) if value != ""]
            if values:
                params[name] = values
    return params


def views_for_user(user, *, tenant_ids: Iterable[str]) -> QuerySet[SavedView]:
    """The views a staff user can pick: their own, and the shared ones of their tenants."""
    views = SavedView.objects.filter(tenant_id__in=list(tenant_ids))
    return views.filter(Q(owner=user) | Q(shared=True)).select_related("owner")


def shared_view_get(*, scope: Scope | TenantScope, slug: str) -> SavedView:
    """The shared view of the scope's tenant with that slug (what an API key may use)."""
    tenant_ids = [scope.tenant_id] if isinstance(scope, Scope) else sorted(scope.tenant_ids)
    # One lookup on saved_view_tenant_slug, in the model's own ordering, as raw SQL: the
    # ORM's building of this query was most of what `view=` added to a list (0.4 ms of its
    # 0.9 ms, bench/sidebyside.py); the columns are the ones applying a view reads.
    table = connection.ops.quote_name(SavedView._meta.db_table)
    placeholders = ", ".join(["%s"] * len(tenant_ids))
    found = SavedView.objects.raw(
        f"SELECT id, tenant_id, slug, name, shared, params FROM {table}"  # noqa: S608 (names, placeholders)
        f" WHERE tenant_id IN ({placeholders}) AND slug = %s AND shared"
        " ORDER BY name, id LIMIT 1",
        [*tenant_ids, slug],
    )
    view = next(iter(found), None)
    if view is None:
        raise SavedViewError(
            f"is not a shared view of this tenant ({abbreviated(slug)!r}): unknown, private"
            " or deleted"
        )
    return view


def with_saved_view(query: QueryDict, view: SavedView) -> tuple[QueryDict, frozenset[str]]:
    """``query`` with the view's parameters under it: each parameter given explicitly
    replaces the view's (a list parameter its whole list). Returns the merged query, without
    `view`, and the names whose values came from the view."""
    merged = QueryDict(mutable=True)
    from_view = set()
    for name, values in (view.params or {}).items():
        if name not in query:
            merged.setlist(name, list(values))
            from_view.add(name)
    for name in query:
        if name != VIEW_PARAM:
            merged.setlist(name, query.getlist(name))
    return merged, frozenset(from_view)


def query_with_saved_view(
    query: QueryDict, *, scope: Scope | TenantScope
) -> tuple[QueryDict, frozenset[str], str | None]:
    """``query`` with the shared view it names (`view=<slug>`) applied: (the merged query,
    the names the view gave, the slug); ``query`` itself when it names none. A SavedViewError
    when `view` is given twice, is not text, or names no shared view of the scope's tenant."""
    if VIEW_PARAM not in query:
        return query, frozenset(), None
    slugs = query.getlist(VIEW_PARAM)
    if len(slugs) > 1:
        raise SavedViewError("must be given only once")
    slug = slugs[0]
    problem = text_problem(slug, max_length=100)
    if problem:
        raise SavedViewError(problem)
    if not slug:
        merged = query.copy()
        merged.pop(VIEW_PARAM)
        return merged, frozenset(), None
    merged, from_view = with_saved_view(query, shared_view_get(scope=scope, slug=slug))
    return merged, from_view, slug


def errors_named_by_view(
    details: Mapping[str, list[str]], *, from_view: frozenset[str]
) -> dict[str, list[str]]:
    """A problem with a parameter that came from the view is the view's: named `view`, the
    message saying which saved parameter is at fault."""
    named: dict[str, list[str]] = {}
    for name, messages in details.items():
        if name in from_view:
            named.setdefault(VIEW_PARAM, []).extend(
                f"has a saved parameter {name} that no longer validates: {message}"
                for message in messages
            )
        else:
            named[name] = list(messages)
    return named


def saved_view_problems(view: SavedView, *, scope: Scope | TenantScope) -> dict[str, list[str]]:
    """Why the view's saved parameters no longer validate (empty when they do)."""
    from customers.selectors import customer_filterset  # selectors import this module's kin

    data = QueryDict(mutable=True)
    for name, values in (view.params or {}).items():
        data.setlist(name, list(values))
    unknown = {
        name: ["is not a parameter of the customer list"]
        for name in data
        if name not in CustomerFilterSet.parameter_names()
        and not CustomerFilterSet.is_metadata_param(name)
    }
    filterset = customer_filterset(scope=scope, filters=data)
    return {**unknown, **({} if filterset.is_valid() else filterset.error_details)}


def clean_name(name: str) -> str:
    name = (name or "").strip()
    problem = text_problem(name, max_length=MAX_NAME_LENGTH)
    if not name:
        raise SavedViewError("A view needs a name.")
    if problem:
        raise SavedViewError(f"The name {problem}.")
    return name


def unique_slug(*, tenant_id: str, name: str, exclude_id: int | None = None) -> str:
    base = slugify(name)[:90] or "view"
    taken = set(
        SavedView.objects.filter(tenant_id=tenant_id, slug__startswith=base)
        .exclude(pk=exclude_id)
        .values_list("slug", flat=True)
    )
    slug, number = base, 2
    while slug in taken:
        slug, number = f"{base}-{number}", number + 1
    return slug


def saved_view_create(
    *,
    user,
    tenant_id: str,
    name: str,
    params: Mapping[str, list[str]],
    columns: list[str],
    shared: bool,
) -> SavedView:
    """A new view of the tenant, owned by ``user``; its slug from its name, unique in the
    tenant (`-2`, `-3`, ... when taken)."""
    name = clean_name(name)
    for _ in range(3):  # two operators saving the same name at once: the next slug
        try:
            with transaction.atomic():
                return SavedView.objects.create(
                    tenant_id=tenant_id,
                    owner=user,
                    name=name,
                    slug=unique_slug(tenant_id=tenant_id, name=name),
                    shared=shared,
                    params=dict(params),
                    columns=list(columns),
                )
        except IntegrityError:
            continue
    raise SavedViewError("Could not save the view; try again.")


def may_change(view: SavedView, user) -> bool:
    return user.is_superuser or (view.owner_id is not None and view.owner_id == user.pk)


def saved_view_update(
    *,
    view: SavedView,
    user,
    name: str | None = None,
    params: Mapping[str, list[str]] | None = None,
    columns: list[str] | None = None,
    shared: bool | None = None,
) -> SavedView:
    """Rename, re-share or replace what the view holds; only its owner or a superuser.
    Renaming keeps the slug (API clients keep working)."""
    if not may_change(view, user):
        raise SavedViewPermissionError("Only the view's owner can change it.")
    if name is not None:
        view.name = clean_name(name)
    if params is not None:
        view.params = dict(params)
    if columns is not None:
        view.columns = list(columns)
    if shared is not None:
        view.shared = shared
    view.updated_at = timezone.now()
    view.save()
    return view


def saved_view_delete(*, view: SavedView, user) -> None:
    if not may_change(view, user):
        raise SavedViewPermissionError("Only the view's owner can delete it.")
    view.delete()
