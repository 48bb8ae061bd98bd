"""The scope every read and write happens in: one tenant and one of its environments."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    tenant_id: str
    environment_id: str

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.environment_id}"
