"""Every API request needs a scope: from its API key, or a staff user's current environment."""

from rest_framework import exceptions, permissions

from customers.access import current_scope, is_operator
from customers.models import ApiKey
from customers.scope import Scope


def request_scope(request) -> Scope | None:
    if isinstance(request.auth, ApiKey):
        return request.auth.scope
    if is_operator(request.user):
        return current_scope(request)
    return None


class HasScope(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated(
                "an API key is required (Authorization: Bearer <key> or x-api-key: <key>);"
                " staff may log in at /admin/login/ instead"
            )
        scope = request_scope(request)
        if scope is None:
            raise exceptions.PermissionDenied(
                "no environment to work in: staff need a membership of a tenant with an environment"
            )
        request.scope = scope
        return True
