"""The field rules that the importer, the API writes and the admin share."""

from datetime import UTC, datetime

import pytest

from customers.validation import CustomerValidationError, clean_customer_fields

VALID = {"external_id": "user_1", "name": "Acme"}


def problems(**fields) -> dict[str, list[str]]:
    with pytest.raises(CustomerValidationError) as raised:
        clean_customer_fields({**VALID, **fields})
    return raised.value.errors


def test_minimal_customer_is_valid():
    assert clean_customer_fields(VALID) == VALID


def test_required_fields():
    with pytest.raises(CustomerValidationError) as raised:
        clean_customer_fields({})
    assert set(raised.value.errors) == {"external_id", "name"}
    assert set(problems(external_id="", name="")) == {"external_id", "name"}


def test_partial_needs_no_required_field():
    assert clean_customer_fields({"email": None}, partial=True) == {"email": None}


@pytest.mark.parametrize(
    ("field", "longest"),
    [
        ("external_id", 255),
        ("name", 255),
        ("address_line1", 255),
        ("address_line2", 255),
        ("address_city", 100),
        ("address_state", 100),
        ("address_postal_code", 20),
    ],
)
def test_lengths(field, longest):
    assert clean_customer_fields({**VALID, field: "x" * longest})[field] == "x" * longest
    assert "at most" in problems(**{field: "x" * (longest + 1)})[field][0]


@pytest.mark.parametrize("field", ["external_id", "name", "address_line1", "address_city", "email"])
def test_nul_bytes_are_refused(field):
    value = "a\x00b@example.com" if field == "email" else "a\x00b"
    assert field in problems(**{field: value})


@pytest.mark.parametrize("field", ["external_id", "name", "address_city", "metadata", "status"])
def test_wrong_types(field):
    assert field in problems(**{field: 12})


def test_email():
    assert (
        clean_customer_fields({**VALID, "email": "Billing@Acme.com"})["email"] == "Billing@Acme.com"
    )
    assert clean_customer_fields({**VALID, "email": None})["email"] is None
    for bad in ["", "not-an-email", "a@", "@b.com", "x" * 250 + "@b.com"]:
        assert "email" in problems(email=bad), bad


def test_country_is_an_iso_code_stored_uppercase():
    assert clean_customer_fields({**VALID, "address_country": "us"})["address_country"] == "US"
    assert clean_customer_fields({**VALID, "address_country": ""})["address_country"] == ""
    for bad in ["XX", "USA", "U", "uk", "ZZ"]:
        assert "address_country" in problems(address_country=bad), bad


def test_metadata_limits():
    fifty = {f"key{number}": "v" for number in range(50)}
    assert clean_customer_fields({**VALID, "metadata": fifty})["metadata"] == fifty
    assert "metadata" in problems(metadata={**fifty, "one_more": "v"})
    assert clean_customer_fields({**VALID, "metadata": {"k" * 40: "v" * 500}})
    assert "metadata" in problems(metadata={"k" * 41: "v"})
    assert "metadata" in problems(metadata={"k": "v" * 501})
    assert "metadata" in problems(metadata={"k": 1})
    assert "metadata" in problems(metadata={"k": None})
    assert "metadata" in problems(metadata={"": "v"})
    assert "metadata" in problems(metadata={"k\x00": "v"})
    assert "metadata" in problems(metadata={"k": "v\x00"})
    assert "metadata" in problems(metadata=["k", "v"])


def test_status_values():
    for status in ["published", "draft", "archived"]:
        assert clean_customer_fields({**VALID, "status": status})["status"] == status
    assert "status" in problems(status="active")


def test_ids():
    assert clean_customer_fields({**VALID, "id": "legacy-ID_42"})["id"] == "legacy-ID_42"
    for bad in ["", "x" * 51, "has space", "slash/", "é", None]:
        assert "id" in problems(id=bad), bad


def test_parent_reference_shape():
    assert (
        clean_customer_fields({**VALID, "parent_customer_id": None})["parent_customer_id"] is None
    )
    assert "parent_customer_id" in problems(parent_customer_id="bad id")


def test_timestamps_need_an_offset():
    aware = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert clean_customer_fields({**VALID, "created_at": aware})["created_at"] == aware
    assert "created_at" in problems(created_at=datetime(2024, 1, 15, 10, 30))
    assert "updated_at" in problems(updated_at="2024-01-15")


def test_unknown_fields_are_named():
    assert problems(colour="blue")["colour"] == ["is not a known field"]


def test_every_error_is_reported_and_the_first_reads_as_a_sentence():
    with pytest.raises(CustomerValidationError) as raised:
        clean_customer_fields({"external_id": "", "name": "x" * 300, "email": "nope"})
    assert set(raised.value.errors) == {"external_id", "name", "email"}
    assert raised.value.first_message == "external_id is required and must not be empty"


@pytest.mark.parametrize(
    "value",
    [
        "a@example.com",
        "Billing.Team+tag@Sub.Example.co.uk",
        "user@localhost",
        "user@[127.0.0.1]",
        "user@[::1]",
        "user@[999.1.1.1]",
        '"quoted name"@example.com',
        "üser@example.com",
        "user@exämple.com",
        "user@-bad.com",
        "user@example",
        "user@@example.com",
        "a" * 65 + "@example.com",
        "user@" + "a" * 64 + ".com",
        "x" * 310 + "@example.com",
        "",
        "no-at-sign",
        "user@example.com.",
    ],
)
def test_email_check_agrees_with_djangos_validator(value):
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from customers.validation import email_is_valid

    try:
        validate_email(value)
        django_says = True
    except ValidationError:
        django_says = False
    assert email_is_valid(value) is django_says


def test_the_country_codes_are_the_249_assigned_ones():
    from customers.validation import ISO_3166_ALPHA2

    assert len(ISO_3166_ALPHA2) == 249
    assert {"US", "GB", "SS", "AX", "CW"} <= ISO_3166_ALPHA2
    assert not {"UK", "XK", "EU", "ZZ"} & ISO_3166_ALPHA2  # not officially assigned
