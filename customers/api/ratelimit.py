"""Rate limits per API key: `API_RATE_LIMIT` requests per window, counted in Django's cache.

Every `/v1/` request that carries a well-formed key (``raw_key_from_headers``, the header
the authentication reads) is counted under the key's SHA-256 hash, before any view or
database query: a flood past the limit costs one cache round trip a request, never a key
lookup. Past the limit it answers `429 rate_limited` in the error envelope with
`Retry-After`; every answer to a key carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (whole seconds until the window ends). The public description of the API
(`/v1/openapi.json`, `/v1/docs/`) is never limited, nor anything outside `/v1/`.

The count is a fixed window aligned to the clock (`100/s`: each second; `N/min`: each
minute since the epoch), one counter per key and window in the `ratelimit` cache (Redis
when `REDIS_URL` is set, shared by every process and machine; each process's memory
otherwise). A fixed window is one atomic increment per request, so the limit costs one
round trip; its known weakness, up to twice the limit across a window's edge, is an
acceptable price for a limit meant to protect the service rather than to bill.

When the cache cannot be reached the request is served uncounted (the limit is not enforced
meanwhile, and the answer carries no RateLimit headers, as there is no count to tell), the
cache is left alone for a second, and the outage is logged at most once a minute per process;
refusals too are logged at most once a minute per key and process, never one line each.
"""

import functools
import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from redis.exceptions import RedisError

from crm.settings.env import parse_rate
from customers.api.authentication import KEY_PATTERN, raw_key_from_headers
from customers.api.errors import error_json_response
from customers.api.middleware import is_api_path
from customers.models import ApiKey, hash_api_key

logger = logging.getLogger("customers.api.ratelimit")

CACHE_ALIAS = "ratelimit"
LIMIT_HEADER = "RateLimit-Limit"
REMAINING_HEADER = "RateLimit-Remaining"
RESET_HEADER = "RateLimit-Reset"
RETRY_AFTER_HEADER = "Retry-After"
PERIOD_WORDS = {1: "second", 60: "minute", 3600: "hour"}
# After a failure the cache is not asked again for this long: a Redis that does not answer
# (rather than refusing at once) would otherwise cost every request its timeout.
RETRY_CACHE_AFTER_SECONDS = 1.0
# How often an outage, or one key's refusals, may be logged by a process.
OUTAGE_LOG_INTERVAL_SECONDS = 60.0
# Errors of the cache, not of the request: Redis's own, and sockets under it.
CACHE_ERRORS = (RedisError, OSError)


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds

    def __str__(self) -> str:
        return f"{self.limit} requests per {PERIOD_WORDS[self.period]}"


@functools.lru_cache(maxsize=8)
def rate_of(text: str) -> Rate:
    try:
        return Rate(*parse_rate(text))
    except ValueError as error:
        raise ImproperlyConfigured(f"API_RATE_LIMIT {error}") from None


@dataclass(frozen=True)
class Usage:
    count: int  # requests of this window, this one included
    reset: int  # whole seconds until the window ends, at least 1


def window_of(rate: Rate, now: float) -> tuple[int, int]:
    """The window `now` falls in, and the whole seconds until it ends (at least 1)."""
    window = int(now // rate.period)
    return window, max(1, math.ceil((window + 1) * rate.period - now))


def redis_client(cache: RedisCache):
    """The Redis client of the backend (`caches` makes one backend per thread).

    Django's `RedisCacheClient.get_client` builds a new `redis.Redis` on every call, which
    costs redis-py 8 about 50 µs, more than the round trip: this one is built once, on the
    backend's own connection pool (a client is safe to share; its pool hands out connections).
    """
    client = getattr(cache, "_ratelimit_client", None)
    if client is None:
        client = cache._ratelimit_client = cache._cache.get_client(write=True)
    return client


def cache_count(key: str, ttl: int) -> int:
    """Add one to the counter `key` of the rate-limit cache and return it.

    On Redis, INCR and EXPIRE go together in one pipeline through the cache backend's own
    client (its connection pool, servers and key prefix): one round trip. The backend's
    public `incr` would cost two (EXISTS, then INCR) and a first `add` more. The expiry only
    frees the memory of past windows: each window has a key of its own.
    """
    cache = caches[CACHE_ALIAS]
    if isinstance(cache, RedisCache):
        key = cache.make_and_validate_key(key)
        pipeline = redis_client(cache).pipeline(transaction=False)
        pipeline.incr(key)
        pipeline.expire(key, ttl)
        count, _ = pipeline.execute()
        return count
    # Any other backend (the in-memory default): add the counter, else increment it.
    if cache.add(key, 1, ttl):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # it expired between the two calls
        cache.set(key, 1, ttl)
        return 1


class CacheOutage:
    """Whether to skip the cache for now; its outages logged at most once a minute (with
    the requests served uncounted since the last report), and their ends once each."""

    def __init__(self):
        self.lock = threading.Lock()
        self.retry_at = 0.0  # time.monotonic() before which the cache is not asked
        self.down = False
        self.reported_down = False  # an outage was logged and its end not yet
        self.logged_at: float | None = None
        self.uncounted = 0

    def skipping(self) -> bool:
        if time.monotonic() >= self.retry_at:
            return False
        with self.lock:
            self.uncounted += 1
        return True

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        with self.lock:
            self.retry_at = now + RETRY_CACHE_AFTER_SECONDS
            self.down = True
            self.uncounted += 1
            if self.logged_at is not None and now - self.logged_at < OUTAGE_LOG_INTERVAL_SECONDS:
                return  # a Redis that flaps is still reported once a minute
            self.logged_at, self.reported_down = now, True
            uncounted, self.uncounted = self.uncounted, 0
        logger.error(
            "API rate limits are not enforced: the rate-limit cache is unreachable (%s: %s);"
            " %d request(s) served uncounted since the last report (reported at most once a"
            " minute)",
            type(error).__name__,
            error,
            uncounted,
        )

    def recovered(self) -> None:
        if not self.down:  # the usual case: no lock
            return
        with self.lock:
            if not self.down:
                return
            self.down = False
            if not self.reported_down:
                return
            self.reported_down = False
            uncounted, self.uncounted = self.uncounted, 0
        logger.warning(
            "API rate limits are enforced again: the rate-limit cache answers"
            " (%d request(s) served uncounted since the last report)",
            uncounted,
        )


outage = CacheOutage()


def usage_of(key_hash: str, rate: Rate) -> Usage | None:
    """This request counted against its key; None when the cache cannot count it."""
    if outage.skipping():
        return None
    window, reset = window_of(rate, time.time())
    try:
        # The key lives one second past its window, for clocks a little apart.
        count = cache_count(f"ratelimit:{key_hash[:32]}:{rate.period}:{window}", reset + 1)
    except CACHE_ERRORS as error:
        outage.failed(error)
        return None
    outage.recovered()
    return Usage(count, reset)


@functools.cache
def unlimited_paths() -> frozenset[str]:
    """The API's public description: never limited, whatever key a request carries."""
    return frozenset({reverse("api:openapi"), reverse("api:docs")})


def limited_key(request: HttpRequest) -> str | None:
    """The key this request is counted against, None when it is not limited."""
    if not is_api_path(request) or request.path in unlimited_paths():
        return None
    raw_key = raw_key_from_headers(request)
    if not raw_key or not KEY_PATTERN.fullmatch(raw_key):
        return None  # no key, or one the authentication refuses without a lookup
    return raw_key


def too_many_requests_message(rate: Rate, reset: int) -> str:
    return f"too many requests: this API key may make {rate}; retry after {reset} s"


class RefusalLog:
    """Refusals logged at most once a minute per key and process, not once per request
    (which Django would do for every 4xx): the first refusal of a window is logged, by
    whichever process made it, unless this process logged that key within the minute."""

    MAX_KEYS = 10_000  # past it, forget them all (a flood of distinct keys)

    def __init__(self):
        self.lock = threading.Lock()
        self.logged_at: dict[str, float] = {}

    def refused(self, raw_key_prefix: str, rate: Rate, usage: Usage) -> None:
        if usage.count != rate.limit + 1:
            return
        now = time.monotonic()
        with self.lock:
            last = self.logged_at.get(raw_key_prefix)
            if last is not None and now - last < OUTAGE_LOG_INTERVAL_SECONDS:
                return
            if len(self.logged_at) >= self.MAX_KEYS:
                self.logged_at.clear()
            self.logged_at[raw_key_prefix] = now
        logger.warning("API key %s passed its rate limit of %s", raw_key_prefix, rate)


refusals = RefusalLog()


def rate_limited_response(raw_key_prefix: str, rate: Rate, usage: Usage) -> HttpResponse:
    refusals.refused(raw_key_prefix, rate, usage)
    response = error_json_response(429, too_many_requests_message(rate, usage.reset))
    response[RETRY_AFTER_HEADER] = str(usage.reset)
    response._has_been_logged = True  # see above (django.utils.log.log_response)
    return response


class ApiRateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        rate_of(settings.API_RATE_LIMIT)  # a bad value stops the app as it loads

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_key = limited_key(request)
        if raw_key is None:
            return self.get_response(request)
        rate = rate_of(settings.API_RATE_LIMIT)
        usage = usage_of(hash_api_key(raw_key), rate)
        if usage is None:
            return self.get_response(request)
        if usage.count > rate.limit:
            # The key's printed prefix (what people know it by) is safe to log.
            response = rate_limited_response(raw_key[: ApiKey.PREFIX_LENGTH], rate, usage)
        else:
            response = self.get_response(request)
        response[LIMIT_HEADER] = str(rate.limit)
        response[REMAINING_HEADER] = str(max(0, rate.limit - usage.count))
        response[RESET_HEADER] = str(usage.reset)
        return response
