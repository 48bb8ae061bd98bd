"""HTML views of the customers app that the admin does not provide."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from customers.access import switch_environment


@require_POST
@staff_member_required
def environment_switch(request: HttpRequest) -> HttpResponseRedirect:
    """Set the current environment (the scope of the browsable API and the admin pages)."""
    environment = switch_environment(request, request.POST.get("environment_id", ""))
    if environment is None:
        messages.error(request, "That environment is not one of yours.")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/admin/"
    return HttpResponseRedirect(next_url)
