"""Read replicas: which database a read goes to, chosen by the selectors themselves.

With ``DATABASE_REPLICA_URLS`` set (crm/settings/base.py), the selectors of the reads that
tolerate a little lag (the list and the search, the export, the event log) ask
``read_database(scope=...)`` for an alias and read with ``.using(alias)``; everything else,
every write and every read no selector routes, uses the primary (``default``) as before.
A replica is used only when all of these hold:

- no transaction is open on the primary: a read inside a write's transaction (or any
  transaction) must see that transaction's rows;
- the scope was not written through the API in the last ``REPLICA_READ_YOUR_WRITES_SECONDS``
  (read-your-writes: ``scope_written`` puts a marker in the ``replicas`` cache, Redis when
  ``REDIS_URL`` is set, so every process and machine sees it);
- the replica answered its last check, at most ``REPLICA_CHECK_SECONDS`` ago, with a replay
  lag of at most ``REPLICA_MAX_LAG_SECONDS``; one that failed is left alone for
  ``REPLICA_RETRY_SECONDS``.

Otherwise the read goes to the primary. A read that fails on a replica (it stopped, its
connection broke) is run again on the primary (``read_with_fallback``; an export before its
first row, ``rows_with_fallback``): no request fails because a replica is down. Outages and
lag are logged at most once a minute per replica and process, and once when it is back.

Without replicas (the default, and SQLite) ``read_database`` returns ``default`` at once
and ``scope_written`` does nothing: no cache, no check, no router.

``PrimaryReplicaRouter`` (``DATABASE_ROUTERS`` when replicas are set) routes nothing by
itself for reads; it sends every write to the primary (an object read from a replica is
saved on the primary), allows relations between the aliases (they hold the same rows) and
migrates the primary only.
"""

import contextlib
import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.dispatch import receiver

from customers.scope import Scope

logger = logging.getLogger("customers.db_router")

CACHE_ALIAS = "replicas"
# What a replica that does not answer raises (Django's wrappers of psycopg's errors).
REPLICA_ERRORS = (OperationalError, InterfaceError)
# Errors of the marker cache (Redis and its sockets); the rate limits catch the same.
try:
    from redis.exceptions import RedisError

    CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
except ImportError:  # pragma: no cover (redis is a requirement)
    CACHE_ERRORS = (OSError,)
LOG_INTERVAL_SECONDS = 60.0

T = TypeVar("T")

# What the replica says of its replay: whether it is in recovery at all (a server that is
# not has no lag), whether WAL it received waits to be replayed (or it receives none: not
# streaming), and the age of the last commit it replayed. See ``lag_estimate``.
POSITION_SQL = """
SELECT pg_is_in_recovery(),
    pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn(),
    COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)::float8
"""


def lag_estimate(
    *, in_recovery: bool, behind: bool, replay_age: float, since_caught_up: float
) -> float:
    """The replay lag in seconds, from above: 0 when the replica has replayed all it received
    (an idle primary sends nothing, and the age of the last replayed commit grows for no
    reason); else no more than the age of its last replayed commit (what waits is newer)
    nor than the time since it was last seen caught up (what waits arrived since), which
    keeps WAL that just arrived after an idle spell from looking as old as that spell."""
    if not in_recovery or not behind:
        return 0.0
    return max(0.0, min(replay_age, since_caught_up))


def replica_aliases() -> tuple[str, ...]:
    return settings.DATABASE_REPLICAS


# --- read-your-writes ---------------------------------------------------------------------


def written_key(scope: Scope) -> str:
    return f"replicas:written:{scope.tenant_id}:{scope.environment_id}"


class ThrottledLog:
    """A message per subject at most once a minute per process (and its end once)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.logged_at: dict[str, float] = {}

    def __call__(self, subject: str, level: int, message: str, *args) -> None:
        now = time.monotonic()
        with self.lock:
            last = self.logged_at.get(subject)
            if last is not None and now - last < LOG_INTERVAL_SECONDS:
                return
            self.logged_at[subject] = now
        logger.log(level, message, *args)

    def reset(self) -> None:
        with self.lock:
            self.logged_at = {}

    def forget(self, subject: str) -> bool:
        """Whether ``subject`` had been logged (its end is then worth a line)."""
        with self.lock:
            return self.logged_at.pop(subject, None) is not None


throttled_log = ThrottledLog()


def scope_written(scope: Scope) -> None:
    """A write in ``scope`` committed: its reads go to the primary for a few seconds."""
    seconds = settings.REPLICA_READ_YOUR_WRITES_SECONDS
    if not replica_aliases() or seconds <= 0:
        return
    try:
        # Whole seconds, rounded up (Redis expires keys by whole seconds).
        caches[CACHE_ALIAS].set(written_key(scope), 1, math.ceil(seconds))
    except CACHE_ERRORS as error:
        throttled_log(
            "cache",
            logging.ERROR,
            "read-your-writes marker not stored (the replicas cache is unreachable: %s: %s);"
            " reads go to the primary while it is (logged at most once a minute)",
            type(error).__name__,
            error,
        )


def recently_written(scope: Scope) -> bool:
    try:
        return caches[CACHE_ALIAS].get(written_key(scope)) is not None
    except CACHE_ERRORS:
        return True  # no marker can be trusted: the primary


# --- replica health -----------------------------------------------------------------------


@dataclass
class ReplicaState:
    checked_at: float = float("-inf")  # time.monotonic() of the last lag check
    usable: bool = False  # what that check found
    lag: float | None = None
    down_until: float = float("-inf")  # after a failure: not asked before then
    caught_up_at: float = float("-inf")  # the last check that found nothing left to replay
    checking: bool = False  # a thread is measuring it now (others keep the last answer)


class ReplicaHealth:
    """Per process: each replica's last check and failures, shared by its threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.states: dict[str, ReplicaState] = {}

    def reset(self) -> None:
        with self.lock:
            self.states = {}

    def state(self, alias: str) -> ReplicaState:
        state = self.states.get(alias)
        if state is None:
            with self.lock:
                state = self.states.setdefault(alias, ReplicaState())
        return state

    def usable(self, alias: str) -> bool:
        state = self.state(alias)
        now = time.monotonic()
        if now < state.down_until:
            return False
        with self.lock:
            if state.checking or now - state.checked_at < settings.REPLICA_CHECK_SECONDS:
                return state.usable and now >= state.down_until
            state.checking = True
        try:
            in_recovery, behind, replay_age = replica_position(alias)
        except REPLICA_ERRORS as error:
            self.failed(alias, error)
            return False
        finally:
            state.checking = False
        checked = time.monotonic()
        if not behind:
            state.caught_up_at = checked
        lag = lag_estimate(
            in_recovery=in_recovery,
            behind=behind,
            replay_age=replay_age,
            since_caught_up=checked - state.caught_up_at,
        )
        max_lag = settings.REPLICA_MAX_LAG_SECONDS
        with self.lock:
            state.checked_at, state.lag, state.usable = checked, lag, lag <= max_lag
        if lag > max_lag:
            throttled_log(
                alias,
                logging.WARNING,
                "replica %s is skipped: its replay lags %.1f s (REPLICA_MAX_LAG_SECONDS is %s);"
                " its reads go to the primary (logged at most once a minute)",
                alias,
                lag,
                max_lag,
            )
            return False
        if throttled_log.forget(alias):
            logger.warning("replica %s serves reads again (replay lag %.1f s)", alias, lag)
        return True

    def failed(self, alias: str, error: Exception) -> None:
        """``alias`` did not answer: reads go to the primary for REPLICA_RETRY_SECONDS."""
        state = self.state(alias)
        with self.lock:
            state.down_until = time.monotonic() + settings.REPLICA_RETRY_SECONDS
            state.usable = False
        with contextlib.suppress(Exception):  # a broken connection may fail to close too
            connections[alias].close()
        throttled_log(
            alias,
            logging.ERROR,
            "replica %s is skipped: it does not answer (%s: %s); its reads go to the primary,"
            " and it is tried again in %s s (logged at most once a minute)",
            alias,
            type(error).__name__,
            str(error).strip(),
            settings.REPLICA_RETRY_SECONDS,
        )


health = ReplicaHealth()


def replica_position(alias: str) -> tuple[bool, bool, float]:
    """(in recovery, WAL waiting or none received, age of the last replayed commit)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(POSITION_SQL)
        in_recovery, behind, replay_age = cursor.fetchone()
        return bool(in_recovery), bool(behind), float(replay_age)


def replay_lag(alias: str) -> float:
    """The lag as one check that knows no earlier one sees it (the age bound alone)."""
    in_recovery, behind, replay_age = replica_position(alias)
    return lag_estimate(
        in_recovery=in_recovery, behind=behind, replay_age=replay_age, since_caught_up=replay_age
    )


@receiver(setting_changed)
def forget_replicas(*, setting, **kwargs) -> None:
    """Tests that change the replicas' settings start from a clean slate."""
    if setting.startswith(("DATABASE_REPLICAS", "REPLICA_")):
        health.reset()
        throttled_log.reset()


# --- choosing and reading -----------------------------------------------------------------


def read_database(*, scope: Scope) -> str:
    """The alias a lag-tolerant read of ``scope`` goes to: a usable replica, or the primary."""
    aliases = replica_aliases()
    if not aliases:
        return DEFAULT_DB_ALIAS
    if connections[DEFAULT_DB_ALIAS].in_atomic_block or recently_written(scope):
        return DEFAULT_DB_ALIAS
    usable = [alias for alias in aliases if health.usable(alias)]
    return random.choice(usable) if usable else DEFAULT_DB_ALIAS


def read_with_fallback(*, scope: Scope, read: Callable[[str], T]) -> T:
    """``read(alias)`` on the alias ``read_database`` chose; run again on the primary when
    a replica fails it (the read must write nothing)."""
    alias = read_database(scope=scope)
    if alias == DEFAULT_DB_ALIAS:
        return read(alias)
    try:
        return read(alias)
    except REPLICA_ERRORS as error:
        health.failed(alias, error)
        return read(DEFAULT_DB_ALIAS)


def reads_from_replica(selector: Callable[..., T]) -> Callable[..., T]:
    """A selector of lag-tolerant reads, taking ``scope`` and ``using``: called without
    ``using``, it runs where ``read_database`` says (``read_with_fallback``); a caller that
    names ``using`` reads there. The selector stays the one read path for every alias."""

    @functools.wraps(selector)
    def routed(*, scope: Scope, **kwargs):
        if "using" in kwargs or not replica_aliases():
            return selector(scope=scope, **kwargs)
        return read_with_fallback(
            scope=scope, read=lambda alias: selector(scope=scope, using=alias, **kwargs)
        )

    return routed


def rows_with_fallback(queryset, rows_of: Callable[..., Iterable]) -> Iterator:
    """``rows_of(queryset)``, streamed; a replica that fails before the first row is read
    gives way to the primary. (Once rows went out, a failure ends the stream, as the
    primary's would: the response has begun.)"""
    alias = queryset.db
    rows = iter(rows_of(queryset))
    if alias == DEFAULT_DB_ALIAS:
        yield from rows
        return
    end = object()
    try:
        first = next(rows, end)
    except REPLICA_ERRORS as error:
        health.failed(alias, error)
        yield from rows_of(queryset.using(DEFAULT_DB_ALIAS))
        return
    if first is end:
        return
    yield first
    yield from rows


class PrimaryReplicaRouter:
    """Writes to the primary; reads where the selectors send them (``read_database``)."""

    def db_for_read(self, model, **hints):
        return None  # the primary, unless a queryset names its alias (.using)

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        known = {DEFAULT_DB_ALIAS, *replica_aliases()}
        return obj1._state.db in known and obj2._state.db in known

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
