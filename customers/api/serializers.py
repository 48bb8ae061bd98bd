"""The customer's JSON shape: the 17 keys of the contract, in its order."""

from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from customers.api.errors import ApiValidationError
from customers.models import Customer, CustomerStatus
from customers.validation import EDITABLE_FIELDS, SERVER_OWNED_FIELDS


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def customer_as_dict(customer: Customer) -> dict[str, Any]:
    """Plain dict building: a list of 1000 customers skips per-field serializer overhead."""
    return {
        "id": customer.id,
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email,
        "address_line1": customer.address_line1,
        "address_line2": customer.address_line2,
        "address_city": customer.address_city,
        "address_state": customer.address_state,
        "address_postal_code": customer.address_postal_code,
        "address_country": customer.address_country,
        "parent_customer_id": customer.parent_id,
        "metadata": customer.metadata,
        "environment_id": customer.environment_id,
        "tenant_id": customer.tenant_id,
        "status": customer.status,
        "created_at": rfc3339(customer.created_at),
        "updated_at": rfc3339(customer.updated_at),
    }


# The contract's customer keys, in order (what customer_as_dict returns).
CUSTOMER_FIELDS = (
    "id",
    "external_id",
    "name",
    "email",
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
    "address_country",
    "parent_customer_id",
    "metadata",
    "environment_id",
    "tenant_id",
    "status",
    "created_at",
    "updated_at",
)


def customer_as_dict_with_parent(customer: Customer) -> dict[str, Any]:
    data = customer_as_dict(customer)
    data["parent_customer"] = customer_as_dict(customer.parent) if customer.parent_id else None
    return data


class CustomerSerializer(serializers.Serializer):
    """Describes the shape (browsable API, schema); rendering goes through customer_as_dict."""

    id = serializers.CharField(read_only=True)
    external_id = serializers.CharField(max_length=255)
    name = serializers.CharField(max_length=255)
    email = serializers.EmailField(max_length=255, allow_null=True, required=False)
    address_line1 = serializers.CharField(max_length=255, allow_blank=True, required=False)
    address_line2 = serializers.CharField(max_length=255, allow_blank=True, required=False)
    address_city = serializers.CharField(max_length=100, allow_blank=True, required=False)
    address_state = serializers.CharField(max_length=100, allow_blank=True, required=False)
    address_postal_code = serializers.CharField(max_length=20, allow_blank=True, required=False)
    address_country = serializers.CharField(max_length=2, allow_blank=True, required=False)
    parent_customer_id = serializers.CharField(allow_null=True, required=False)
    metadata = serializers.DictField(child=serializers.CharField(), required=False)
    environment_id = serializers.CharField(read_only=True)
    tenant_id = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=CustomerStatus.choices, required=False)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Customer) -> dict[str, Any]:
        if self.context.get("expand_parent"):
            return customer_as_dict_with_parent(instance)
        return customer_as_dict(instance)


# Keys a client may send back as it read them; they are ignored, never written.
READ_ONLY_BODY_FIELDS = frozenset({*SERVER_OWNED_FIELDS, "parent_customer"})
# What DRF's browsable API adds to the bodies it posts.
BROWSABLE_API_FORM_FIELDS = frozenset({"csrfmiddlewaretoken", "_content", "_content_type"})


def customer_fields_from_body(body: Any) -> dict[str, Any]:
    """The writable fields of a JSON body; an unknown field is a 400 naming it."""
    if not isinstance(body, dict):
        raise ApiValidationError({"body": ["must be a JSON object"]})
    ignored = READ_ONLY_BODY_FIELDS | BROWSABLE_API_FORM_FIELDS
    unknown = [name for name in body if name not in EDITABLE_FIELDS and name not in ignored]
    if unknown:
        raise ApiValidationError({str(name): ["is not a known field"] for name in unknown})
    return {name: value for name, value in body.items() if name in EDITABLE_FIELDS}
