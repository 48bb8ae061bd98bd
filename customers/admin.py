"""Admin registrations. Staff see only their tenants' customers; superusers see everything.

Customers are read-only here until the admin edits go through ``customers.services``.
"""

from django.contrib import admin

from customers.access import is_operator
from customers.models import ApiKey, Customer, Environment, Membership, Tenant


def user_tenant_ids(user):
    return user.memberships.values("tenant_id")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "external_id",
        "name",
        "email",
        "status",
        "tenant",
        "environment",
        "created_at",
    )
    list_filter = ("status",)
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        if not is_operator(request.user):
            return queryset.none()
        return queryset.filter(tenant_id__in=user_tenant_ids(request.user))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
