"""Who may see what: staff users' tenants and their current environment (the switcher).

API clients get their scope from their key (``customers.api.authentication``); logged-in
staff get it from the environment kept in their session, chosen with the switcher among the
environments of their tenants (superusers: any environment).

The admin's customer list shows that same current environment, or, with
``environment=all`` in its URL, every environment of the user's tenants: never a third
state, so the list, its filter and the header switcher always agree.
"""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.db.models import QuerySet
from django.http import HttpRequest

from customers.models import Environment
from customers.scope import Scope, TenantScope

SESSION_ENVIRONMENT_KEY = "crm_current_environment_id"
REQUEST_CACHE_ATTRIBUTE = "_crm_current_environment"
# The customer list's URL parameter: "all", or absent/empty for the current environment.
ENVIRONMENT_PARAM = "environment"
ALL_ENVIRONMENTS = "all"


def is_operator(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def environments_for_user(user) -> QuerySet[Environment]:
    """The environments a staff user may work in, ordered by tenant and environment id."""
    environments = Environment.objects.select_related("tenant").order_by("tenant_id", "id")
    if not is_operator(user):
        return environments.none()
    if user.is_superuser:
        return environments
    return environments.filter(tenant__memberships__user=user)


def current_environment(request: HttpRequest) -> Environment | None:
    """The staff user's current environment (chosen, else their first); cached per request."""
    request = getattr(request, "_request", request)  # a DRF Request wraps the HttpRequest
    if hasattr(request, REQUEST_CACHE_ATTRIBUTE):
        return getattr(request, REQUEST_CACHE_ATTRIBUTE)
    environments = environments_for_user(request.user)
    chosen_id = (
        request.session.get(SESSION_ENVIRONMENT_KEY) if hasattr(request, "session") else None
    )
    environment = None
    if chosen_id:
        environment = environments.filter(pk=chosen_id).first()
    if environment is None:
        environment = environments.first()
    setattr(request, REQUEST_CACHE_ATTRIBUTE, environment)
    return environment


def environments_of_request(request: HttpRequest) -> list[Environment]:
    """environments_for_user as a list, read once per request (the switcher and the admin's
    environment filter both show it)."""
    request = getattr(request, "_request", request)
    cached = getattr(request, "_crm_environments", None)
    if cached is None:
        cached = list(environments_for_user(request.user))
        request._crm_environments = cached
    return cached


def current_scope(request: HttpRequest) -> Scope | None:
    environment = current_environment(request)
    return environment.scope if environment else None


def switch_environment(request: HttpRequest, environment_id: str) -> Environment | None:
    """Make ``environment_id`` the user's current environment if they may use it."""
    environment = environments_for_user(request.user).filter(pk=environment_id).first()
    if environment is not None:
        request.session[SESSION_ENVIRONMENT_KEY] = environment.pk
        setattr(request, REQUEST_CACHE_ATTRIBUTE, environment)
    return environment


def tenant_scope_for_user(user) -> TenantScope:
    """What an operator sees in the admin: every environment of their tenants."""
    if not is_operator(user):
        return TenantScope(tenant_ids=frozenset())
    if user.is_superuser:
        return TenantScope(tenant_ids=None)
    cached = getattr(user, "_crm_tenant_scope", None)
    if cached is None:
        cached = TenantScope(
            tenant_ids=frozenset(user.memberships.values_list("tenant_id", flat=True))
        )
        user._crm_tenant_scope = cached
    return cached


def environment_param_choice(request: HttpRequest) -> str:
    """What the customer list's `environment` parameter asks for: ``ALL_ENVIRONMENTS``, a
    specific environment id (to become the current one), or "" for the current one."""
    values = [value for value in request.GET.getlist(ENVIRONMENT_PARAM) if value]
    specific = [value for value in values if value != ALL_ENVIRONMENTS]
    if specific:
        return specific[-1]
    return ALL_ENVIRONMENTS if values else ""


def lists_all_environments(request: HttpRequest) -> bool:
    return environment_param_choice(request) == ALL_ENVIRONMENTS


def url_without_params(url: str, names: tuple[str, ...]) -> str:
    """``url`` with the query parameters ``names`` removed (the others kept, in order)."""
    parts = urlsplit(url)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in names
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def url_with_param(url: str, name: str, value: str) -> str:
    """``url`` with the query parameter ``name`` set to ``value`` (once)."""
    parts = urlsplit(url_without_params(url, (name,)))
    query = [*parse_qsl(parts.query, keep_blank_values=True), (name, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))
