"""The production settings without the rate limiter: bench/sidebyside.py's baseline for what
the limiter costs."""

from crm.settings.production import *  # noqa: F403

MIDDLEWARE = [name for name in MIDDLEWARE if "ratelimit" not in name]  # noqa: F405
