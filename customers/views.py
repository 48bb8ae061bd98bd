"""HTML views of the customers app that the admin does not provide."""

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.admin.views.main import PAGE_VAR
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from customers.access import (
    ALL_ENVIRONMENTS,
    ENVIRONMENT_PARAM,
    switch_environment,
    url_with_param,
    url_without_params,
)

# What the switcher's `next` URL loses: the list's environment (the session holds it now)
# and its page number (a page of another environment's list means nothing).
DROPPED_ON_SWITCH = (ENVIRONMENT_PARAM, PAGE_VAR)


@require_POST
@staff_member_required
def environment_switch(request: HttpRequest) -> HttpResponseRedirect:
    """Set the current environment (the scope of the browsable API and the admin pages).

    ``all`` is offered on the customer list only: it lists every environment of the user's
    tenants (``environment=all``) and leaves the current environment as it is.
    """
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/admin/"
    chosen = request.POST.get("environment_id", "")
    if chosen == ALL_ENVIRONMENTS:
        changelist = reverse("admin:customers_customer_changelist")
        if urlsplit(next_url).path != changelist:
            next_url = changelist
        next_url = url_without_params(next_url, DROPPED_ON_SWITCH)
        return HttpResponseRedirect(url_with_param(next_url, ENVIRONMENT_PARAM, ALL_ENVIRONMENTS))
    if switch_environment(request, chosen) is None:
        messages.error(request, "That environment is not one of yours.")
        return HttpResponseRedirect(next_url)  # nothing changed, the page neither
    return HttpResponseRedirect(url_without_params(next_url, DROPPED_ON_SWITCH))


@require_GET
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """`/favicon.ico`, which browsers ask for whatever the page links: the static icon."""
    return HttpResponseRedirect(static("customers/favicon.svg"))
