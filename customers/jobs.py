"""Jobs: rows that workers claim for a while, the project's one claim mechanism.

A job is a row of a model with three fields: ``next_attempt_at`` (when it is due),
``claimed_until`` and ``claim_token``. Webhook deliveries (``customers.webhooks``) and
imports from the admin (``customers.import_jobs``) are such rows.

- ``claim`` takes up to ``limit`` due rows in one short transaction (``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL: rows another worker is claiming are skipped, not waited for; on
  SQLite the transaction is ``IMMEDIATE``, so claims are one at a time anyway) and moves
  each a lease ahead (``next_attempt_at = claimed_until = now + lease``, with the claim's
  token). No other worker takes them meanwhile; should this worker die, they come due
  again when the lease ends and another worker takes them.
- The holder renews the lease while it works (``Claim.renew``), gives back what it did not
  do (``Claim.release``), and records each outcome with an update filtered on its token
  (``Claim.held``): a holder whose lease ran out, and was taken over, changes nothing.
- ``run_worker`` is the workers' loop: a step until SIGTERM (or, ``once``, until a step
  finds nothing), waiting when idle, and riding out a database that is away.
"""

import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

logger = logging.getLogger("customers.jobs")

DATABASE_RETRY_SECONDS = 5.0


@dataclass
class Claim:
    """What one worker holds: rows of ``model`` with ``token``, until ``until``."""

    model: type[Model]
    token: str
    ids: list[Any]
    until: datetime

    def held(self, ids: Sequence[Any] | None = None) -> QuerySet:
        """The claimed rows (or those of ``ids``) that this claim still holds."""
        return self.model.objects.filter(
            pk__in=self.ids if ids is None else ids, claim_token=self.token
        )

    def renew(self, *, lease: timedelta, ids: Sequence[Any] | None = None) -> int:
        """Move the lease of the rows still held ahead; how many are still held."""
        until = timezone.now() + lease
        renewed = self.held(ids).update(next_attempt_at=until, claimed_until=until)
        self.until = until
        return renewed

    def release(self, ids: Sequence[Any] | None = None, **changes: Any) -> int:
        """Give back rows not done (due again at once), with ``changes``; how many."""
        if ids is not None and not ids:
            return 0
        return self.held(ids).update(
            next_attempt_at=timezone.now(), claimed_until=None, claim_token="", **changes
        )

    def needs_renewal(self, *, within: timedelta) -> bool:
        return timezone.now() + within > self.until


def claim(
    due: QuerySet, *, limit: int, lease: timedelta, token: str | None = None, **changes: Any
) -> Claim:
    """Claim up to ``limit`` rows of ``due`` (a queryset of due rows, in the order to take
    them), moving each ``lease`` ahead, with ``changes`` applied to them too."""
    token = token or uuid.uuid4().hex
    model = due.model
    until = timezone.now() + lease
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            model.objects.filter(pk__in=ids).update(
                next_attempt_at=until, claimed_until=until, claim_token=token, **changes
            )
    return Claim(model=model, token=token, ids=ids, until=until)


def run_worker(
    step: Callable[[threading.Event], int],
    *,
    name: str,
    once: bool,
    stop: threading.Event | None = None,
    poll_seconds: float = 1.0,
) -> None:
    """Run ``step`` (which returns how many jobs it claimed) until ``stop`` is set, or, with
    ``once``, until a step claims nothing."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            claimed = step(stop)
        except (OperationalError, InterfaceError):
            if once:
                raise
            # The database is away: what was claimed comes due when its lease ends.
            logger.exception("%s: the database is unavailable, retrying", name)
            connection.close()
            stop.wait(DATABASE_RETRY_SECONDS)
            continue
        if not claimed:
            if once:
                break
            connection.close()  # nothing to do: no connection held while idle
            stop.wait(poll_seconds)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM and SIGINT set (in the main thread), for a worker command."""
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
