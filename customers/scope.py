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


@dataclass(frozen=True, slots=True)
class TenantScope:
    tenant_ids: frozenset[str] | None

    @property
    def is_unrestricted(self) -> bool:
        return self.tenant_ids is None
