"""The customer's JSON shape: the 17 keys of the contract, in its order."""

from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from customers.models import Customer, CustomerStatus


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
