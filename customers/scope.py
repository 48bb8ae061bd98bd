"""What a read or write may touch.

``Scope`` is one tenant and one of its environments: every API request and every write
happens in exactly one. ``TenantScope`` is an operator's view in the admin pages: every
environment of the tenants they belong to (``None``: every tenant, for superusers).
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    tenant_id: str
    environment_id: str

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.environment_id}"

    def confine(self, queryset):
        """``queryset`` (of any model with a tenant and an environment) within this scope:
        the one way every query is limited to a scope."""
        return queryset.filter(tenant_id=self.tenant_id, environment_id=self.environment_id)


@dataclass(frozen=True, slots=True)
class TenantScope:
    tenant_ids: frozenset[str] | None

    @property
    def is_unrestricted(self) -> bool:
        return self.tenant_ids is None

    def confine(self, queryset):
        """``queryset`` within these tenants (all of them when unrestricted)."""
        if self.tenant_ids is None:
            return queryset.all()
        return queryset.filter(tenant_id__in=sorted(self.tenant_ids))
