"""Identifiers: ULID-based customer, event and webhook endpoint ids; random key and secret
material."""

import base64
import os
import secrets
import time

CROCKFORD_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CUSTOMER_ID_PREFIX = "cust_"
ULID_LENGTH = 26
# Two characters (ten bits) at a time for the time part; one byte's low five bits per
# character for the random part: cheaper than encoding one large integer.
CROCKFORD_PAIRS = [
    (first + second).encode() for first in CROCKFORD_BASE32 for second in CROCKFORD_BASE32
]
BYTE_TO_CROCKFORD = bytes(ord(CROCKFORD_BASE32[byte & 31]) for byte in range(256))


def ulid_bytes(milliseconds: int, randomness: bytes) -> bytes:
    """A ULID's 26 ASCII characters: 48 bits of milliseconds, then 80 random bits, taken as
    the low five bits of each of ``randomness``'s 16 bytes, in Crockford base32.

    The one ULID encoder: new ids, the demo's stable ids and the seeder's all use it.
    """
    pairs = CROCKFORD_PAIRS
    return (
        pairs[milliseconds >> 40]
        + pairs[(milliseconds >> 30) & 1023]
        + pairs[(milliseconds >> 20) & 1023]
        + pairs[(milliseconds >> 10) & 1023]
        + pairs[milliseconds & 1023]
        + randomness.translate(BYTE_TO_CROCKFORD)
    )


def five_bit_groups(value: int) -> bytes:
    """An 80-bit integer as the 16 five-bit groups ``ulid_bytes`` takes, most significant first."""
    return bytes((value >> shift) & 31 for shift in range(75, -1, -5))


def new_ulid() -> str:
    """A 26-character ULID of now, with 80 random bits."""
    return ulid_bytes(int(time.time() * 1000), os.urandom(16)).decode()


def new_customer_id() -> str:
    return CUSTOMER_ID_PREFIX + new_ulid()


EVENT_ID_PREFIX = "evt_"


def new_event_id() -> str:
    return EVENT_ID_PREFIX + new_ulid()


WEBHOOK_ENDPOINT_ID_PREFIX = "we_"
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = 32


def new_webhook_endpoint_id() -> str:
    return WEBHOOK_ENDPOINT_ID_PREFIX + new_ulid()


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    random_bytes = secrets.token_bytes(WEBHOOK_SECRET_BYTES)
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(random_bytes).decode()


def new_api_key_secret() -> str:
    """32 URL-safe random characters (192 bits of entropy)."""
    return secrets.token_urlsafe(24)
