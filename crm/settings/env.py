"""Reading typed values from environment variables, with safe defaults."""

import os
import re

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# `API_RATE_LIMIT` and its like: N requests per second, minute or hour.
RATE_PERIODS = {"s": 1, "min": 60, "h": 3600}
RATE_PATTERN = re.compile(r"([1-9][0-9]{0,9})/(s|min|h)")


def parse_rate(text: str) -> tuple[int, int]:
    """`N/s`, `N/min` or `N/h` -> (N, the period in seconds); ValueError otherwise."""
    match = RATE_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"must be N/s, N/min or N/h with N a whole number from 1 (e.g. 100/s), not {text!r}"
        )
    return int(match[1]), RATE_PERIODS[match[2]]


def env_rate(name: str, default: str) -> str:
    raw = os.environ.get(name, default)
    try:
        parse_rate(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} {error}") from None
    return raw.strip()
