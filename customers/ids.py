"""Identifiers: ULID-based customer and event ids and random API key material."""

import os
import secrets
import time

CROCKFORD_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CUSTOMER_ID_PREFIX = "cust_"


def new_ulid() -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits, Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD_BASE32[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_customer_id() -> str:
    return CUSTOMER_ID_PREFIX + new_ulid()


EVENT_ID_PREFIX = "evt_"


def new_event_id() -> str:
    return EVENT_ID_PREFIX + new_ulid()


def new_api_key_secret() -> str:
    """32 URL-safe random characters (192 bits of entropy)."""
    return secrets.token_urlsafe(24)
