"""customers.shape is the one definition of the customer's fields: the rest agrees with it."""

from customers.api.serializers import CustomerSerializer
from customers.exports import COLUMNS
from customers.ids import ULID_LENGTH, five_bit_groups, new_ulid, ulid_bytes
from customers.models import Customer
from customers.selectors import ROW_COLUMNS
from customers.shape import (
    CUSTOMER_FIELDS,
    EDITABLE_FIELDS,
    FIELD_NAMES,
    NULLABLE_FIELDS,
    SERVER_OWNED_FIELDS,
)
from customers.tests.contract import CUSTOMER_KEYS
from customers.validation import TEXT_FIELD_LIMITS


def test_the_fields_are_the_contracts_keys_in_order():
    assert tuple(CUSTOMER_KEYS) == FIELD_NAMES
    assert COLUMNS == FIELD_NAMES
    assert tuple(CustomerSerializer().fields) == FIELD_NAMES
    assert set(EDITABLE_FIELDS) | set(SERVER_OWNED_FIELDS) == set(FIELD_NAMES)
    assert set(SERVER_OWNED_FIELDS) == {
        "id",
        "tenant_id",
        "environment_id",
        "created_at",
        "updated_at",
    }


def test_the_model_columns_have_the_shapes_lengths_and_nullability():
    for field, attribute in zip(CUSTOMER_FIELDS, ROW_COLUMNS, strict=True):
        model_field = Customer._meta.get_field(attribute)
        # A foreign key's column is its target's (the parent's id, the scope's ids).
        column_field = getattr(model_field, "target_field", model_field)
        if field.max_length is not None:
            assert column_field.max_length == field.max_length, field.name
        assert model_field.null == (field.name in NULLABLE_FIELDS), field.name


def test_the_api_serializer_and_validation_use_the_same_lengths():
    serializer_fields = CustomerSerializer().fields
    for name, (_, max_length) in TEXT_FIELD_LIMITS.items():
        assert serializer_fields[name].max_length == max_length, name


def test_one_ulid_encoder():
    assert ulid_bytes(0, bytes(16)) == b"0" * ULID_LENGTH
    assert ulid_bytes(2**48 - 1, bytes([31] * 16)) == b"7" + b"Z" * 25
    assert ulid_bytes(1, five_bit_groups(1)) == b"0" * 9 + b"1" + b"0" * 15 + b"1"
    assert len(new_ulid()) == ULID_LENGTH
    assert new_ulid() != new_ulid()
