"""What the API contract pins, written out once for the tests (never derived from the code,
so that a change to the code's field list must be deliberate)."""

# The customer object: always these 17 keys, in this order.
CUSTOMER_KEYS = [
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
]
