"""The customer's JSON shape: the 17 keys of the contract, in its order."""

from typing import Any

from rest_framework import serializers

from customers.api.errors import ApiValidationError
from customers.models import Customer, CustomerStatus
from customers.representation import CUSTOMER_FIELDS, customer_as_dict
from customers.shape import EDITABLE_FIELDS, SERVER_OWNED_FIELDS, max_length_of

__all__ = ["CUSTOMER_FIELDS", "CustomerSerializer", "customer_fields_from_body"]


class CustomerSerializer(serializers.Serializer):
    """Describes the shape (browsable API forms); rendering goes through customer_as_dict, and
    lists through customers.api.presenters."""

    id = serializers.CharField(read_only=True)
    external_id = serializers.CharField(max_length=max_length_of("external_id"))
    name = serializers.CharField(max_length=max_length_of("name"))
    # `initial` is what the browsable API's raw form is prefilled with: a body that posts as
    # it is once external_id and name are filled in.
    email = serializers.EmailField(
        max_length=max_length_of("email"), allow_null=True, required=False, initial=None
    )
    address_line1 = serializers.CharField(
        max_length=max_length_of("address_line1"), allow_blank=True, required=False
    )
    address_line2 = serializers.CharField(
        max_length=max_length_of("address_line2"), allow_blank=True, required=False
    )
    address_city = serializers.CharField(
        max_length=max_length_of("address_city"), allow_blank=True, required=False
    )
    address_state = serializers.CharField(
        max_length=max_length_of("address_state"), allow_blank=True, required=False
    )
    address_postal_code = serializers.CharField(
        max_length=max_length_of("address_postal_code"), allow_blank=True, required=False
    )
    address_country = serializers.CharField(
        max_length=max_length_of("address_country"), allow_blank=True, required=False
    )
    parent_customer_id = serializers.CharField(allow_null=True, required=False, initial=None)
    metadata = serializers.DictField(child=serializers.CharField(), required=False, initial=dict)
    environment_id = serializers.CharField(read_only=True)
    tenant_id = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(
        choices=CustomerStatus.choices, required=False, initial=CustomerStatus.PUBLISHED.value
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Customer) -> dict[str, Any]:
        return customer_as_dict(instance)


# Keys a client may send back as it read them; they are ignored, never written.
READ_ONLY_BODY_FIELDS = frozenset({*SERVER_OWNED_FIELDS, "parent_customer"})
# What DRF's browsable API adds to the bodies it posts.
BROWSABLE_API_FORM_FIELDS = frozenset({"csrfmiddlewaretoken", "_content", "_content_type"})


# Fields of Flexprice's newer customer (its SDK's create and update) that this API does not
# store: refused by name rather than dropped, so that nothing a client sends is lost unseen.
FLEXPRICE_ONLY_FIELDS = frozenset(
    {
        "billing_currency",
        "contact",
        "contact_persons",
        "integration_entity_mapping",
        "onboarding_workflow_name",
        "skip_onboarding_workflow",
        "tax_rate_overrides",
        "tax_treatment",
        "timezone",
    }
)
FLEXPRICE_ONLY_MESSAGE = "is a Flexprice field this API does not store: leave it out"


def customer_fields_from_body(body: Any) -> dict[str, Any]:
    """The writable fields of a JSON body; an unknown field is a 400 naming it."""
    if not isinstance(body, dict):
        raise ApiValidationError({"body": ["must be a JSON object"]})
    ignored = READ_ONLY_BODY_FIELDS | BROWSABLE_API_FORM_FIELDS
    unknown = [name for name in body if name not in EDITABLE_FIELDS and name not in ignored]
    if unknown:
        raise ApiValidationError(
            {
                str(name): [
                    FLEXPRICE_ONLY_MESSAGE
                    if name in FLEXPRICE_ONLY_FIELDS
                    else "is not a known field"
                ]
                for name in unknown
            }
        )
    return {name: value for name, value in body.items() if name in EDITABLE_FIELDS}
