"""`{% customer_dashboard %}`: the admin index's dashboard of the current environment."""

from django import template

from customers.access import current_environment, is_operator
from customers.dashboard import environment_dashboard
from customers.models import IMPORT_DUE_STATUSES

register = template.Library()


@register.inclusion_tag("admin/customers/dashboard.html", takes_context=True)
def customer_dashboard(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or not is_operator(user):
        return {"dashboard": None}
    environment = current_environment(request)
    if environment is None:
        return {"dashboard": None}
    return {
        "dashboard": environment_dashboard(
            environment=environment,
            with_endpoints=user.has_perm("customers.view_webhookendpoint"),
            with_imports=user.has_perm("customers.view_customer"),
            may_import=user.has_perm("customers.add_customer"),
        ),
        "running_statuses": IMPORT_DUE_STATUSES,
    }


@register.filter
def thousands(value) -> str:
    """1234567 as 1,234,567."""
    return f"{value:,}" if isinstance(value, int) else value
