"""Test runs: fast password hashing, the demo key allowed, quiet logs."""

from crm.settings.dev import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# Far above what any test sends (the rate-limit tests set their own), counted in memory
# whatever the environment says, so that no other test can be refused or depend on Redis.
API_RATE_LIMIT = "10000/s"
REDIS_URL = ""
CACHES["ratelimit"] = ratelimit_cache(REDIS_URL)  # noqa: F405
