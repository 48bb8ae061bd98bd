"""The customer's shape, once: its fields in the contract's order, with their rules.

Everything that lists, limits or writes customer fields reads them here: the model's
column lengths, the validation rules, the API's serializers and schema, the list rows, the
CSV export and import, the seeder. A field added or changed here is changed everywhere.
This module imports nothing of the project, so that models.py can read it too.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CustomerField:
    name: str  # the API's name
    attribute: str  # the model's attribute (the parent is `parent_id` there)
    max_length: int | None = None  # characters, for text
    nullable: bool = False  # `null` when unset (else "" or {} as the contract says)
    required: bool = False  # must be given to create a customer
    editable: bool = True  # a client may write it; otherwise the server owns it
    plain_text: bool = False  # free text, checked only for its length (and valid text)


# The contract's 17 keys, in its order ("Customer object").
CUSTOMER_FIELDS = (
    CustomerField("id", "id", max_length=50, editable=False),
    CustomerField("external_id", "external_id", max_length=255, required=True, plain_text=True),
    CustomerField("name", "name", max_length=255, required=True, plain_text=True),
    CustomerField("email", "email", max_length=255, nullable=True),
    CustomerField("address_line1", "address_line1", max_length=255, plain_text=True),
    CustomerField("address_line2", "address_line2", max_length=255, plain_text=True),
    CustomerField("address_city", "address_city", max_length=100, plain_text=True),
    CustomerField("address_state", "address_state", max_length=100, plain_text=True),
    CustomerField("address_postal_code", "address_postal_code", max_length=20, plain_text=True),
    CustomerField("address_country", "address_country", max_length=2),
    CustomerField("parent_customer_id", "parent_id", max_length=50, nullable=True),
    CustomerField("metadata", "metadata"),
    CustomerField("environment_id", "environment_id", max_length=64, editable=False),
    CustomerField("tenant_id", "tenant_id", max_length=64, editable=False),
    CustomerField("status", "status", max_length=16),
    CustomerField("created_at", "created_at", editable=False),
    CustomerField("updated_at", "updated_at", editable=False),
)
FIELD = {field.name: field for field in CUSTOMER_FIELDS}

# The API's names, in order; and the same fields as model attributes (what a row reads).
FIELD_NAMES = tuple(field.name for field in CUSTOMER_FIELDS)
ROW_ATTRIBUTES = tuple(field.attribute for field in CUSTOMER_FIELDS)
API_NAME_OF_ATTRIBUTE = {
    field.attribute: field.name for field in CUSTOMER_FIELDS if field.attribute != field.name
}

EDITABLE_FIELDS = tuple(field.name for field in CUSTOMER_FIELDS if field.editable)
SERVER_OWNED_FIELDS = tuple(field.name for field in CUSTOMER_FIELDS if not field.editable)
REQUIRED_FIELDS = tuple(field.name for field in CUSTOMER_FIELDS if field.required)
NULLABLE_FIELDS = frozenset(field.name for field in CUSTOMER_FIELDS if field.nullable)
PLAIN_TEXT_FIELDS = tuple(field.name for field in CUSTOMER_FIELDS if field.plain_text)
SCOPE_FIELDS = ("tenant_id", "environment_id")
TIMESTAMP_FIELDS = ("created_at", "updated_at")

# Metadata: string keys to string values.
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500


def max_length_of(name: str) -> int:
    length = FIELD[name].max_length
    assert length is not None, f"{name} has no length limit"
    return length
