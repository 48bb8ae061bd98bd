"""Bulk writes of customers, shared by the import, the seeder and the import's events.

- ``bulk_insert``: rows of any model, COPY on PostgreSQL, ``bulk_create`` in batches
  elsewhere; rows are consumed as they are produced, so the database works while Python
  computes the next ones, and memory holds one batch at a time (none at all for COPY).
- ``CustomerRow`` and ``write_customer_rows``: checked customers, with their derived keys
  and the per-status counts, in the caller's transaction.
- ``write_in_parallel``: several connections at once, all or nothing (the seeder's).
"""

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple

from django.db import connection, models, transaction

from customers.counts import customer_counts_add
from customers.models import Customer, CustomerEvent, WebhookAttempt, WebhookDelivery
from customers.representation import row_as_dict
from customers.scope import Scope
from customers.shape import ROW_ATTRIBUTES

PROGRESS_EVERY_ROWS = 5_000
BULK_CREATE_BATCH_SIZE = 2_000
# Column types for COPY's binary format: values are sent as their type, no text escaping.
COPY_TYPES = {"JSONField": "jsonb", "DateTimeField": "timestamptz"}  # all else is text


def bulk_insert(
    model: type[models.Model],
    attributes: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Insert ``rows`` (values in ``attributes`` order, model attribute names) into
    ``model``'s table in the caller's transaction; returns how many. ``on_progress(done)``
    is called every PROGRESS_EVERY_ROWS rows and once at the end.

    A refused row (a constraint) raises IntegrityError, as an INSERT would.
    """
    report = on_progress or (lambda done: None)
    if connection.vendor == "postgresql":
        done = copy_rows(model, attributes, rows, report)
    else:
        done = bulk_create_rows(model, attributes, rows, report)
    report(done)
    return done


def copy_rows(model, attributes, rows, report) -> int:
    field_of = {field.attname: field for field in model._meta.concrete_fields}
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field_of[attribute].column) for attribute in attributes)
    statement = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"
    types = [
        COPY_TYPES.get(field_of[attribute].get_internal_type(), "text") for attribute in attributes
    ]
    done = 0
    # The raw psycopg cursor bypasses Django's error translation: restore it, so that a
    # conflict is an IntegrityError here as on SQLite.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(statement) as copy,
    ):
        copy.set_types(types)
        for done, row in enumerate(rows, start=1):
            copy.write_row(row)
            if done % PROGRESS_EVERY_ROWS == 0:
                report(done)
    return done


def bulk_create_rows(model, attributes, rows, report) -> int:
    # Built batch by batch, so that the model instances of the whole input never coexist.
    done = 0
    iterator = iter(rows)
    while batch := list(islice(iterator, BULK_CREATE_BATCH_SIZE)):
        model.objects.bulk_create(
            [model(**dict(zip(attributes, row, strict=True))) for row in batch]
        )
        done += len(batch)
        if done % PROGRESS_EVERY_ROWS < len(batch):
            report(done)
    return done


# -- Customers --------------------------------------------------------------------------------


class CustomerRow(NamedTuple):
    """One validated record, its values named by ``Customer`` attribute (FK ``*_id``)."""

    line: int
    id: str
    external_id: str
    name: str
    email: str | None
    address_line1: str
    address_line2: str
    address_city: str
    address_state: str
    address_postal_code: str
    address_country: str
    parent_id: str | None
    metadata: dict[str, str]
    status: str
    created_at: datetime
    updated_at: datetime
    derived_keys: tuple[Any, ...]  # values of Customer.DERIVED_KEY_FIELDS (sort, search keys)


# What is written, in order: the scope, the row's values, then its derived keys.
WRITTEN_ATTRIBUTES = (
    "tenant_id",
    "environment_id",
    *CustomerRow._fields[1:-1],
    *Customer.DERIVED_KEY_FIELDS,
)


def written_values(row: CustomerRow) -> tuple[Any, ...]:
    """The row's values in WRITTEN_ATTRIBUTES order, after the scope's two."""
    return row[1:-1] + row.derived_keys


def customer_row_object(row: CustomerRow, scope: Scope) -> dict[str, Any]:
    """A written row as the API returns the customer (its ``customer.created`` event's)."""
    values = {**row._asdict(), "tenant_id": scope.tenant_id, "environment_id": scope.environment_id}
    return row_as_dict(tuple(values[attribute] for attribute in ROW_ATTRIBUTES))


# Reports progress: report(phase, done, total), first with done=0 as a phase begins.
Reporter = Callable[[str, int, int | None], None]


def write_customer_rows(
    *,
    rows: Iterable[CustomerRow],
    scope: Scope,
    report: Reporter | None = None,
    total: int | None = None,
    add_counts: bool = True,
) -> Counter[str]:
    """Insert the rows as they come (an iterator is consumed while the database works);
    the caller holds the transaction. Returns how many were written per status, which the
    per-status counts have been given too (unless ``add_counts`` is false: the caller
    adds them, in the same transaction).

    Parent foreign keys are checked at commit (DEFERRABLE INITIALLY DEFERRED on both
    databases), so a child may be written before its parent.
    """
    report = report or (lambda phase, done, total: None)
    statuses: Counter[str] = Counter()
    scope_values = (scope.tenant_id, scope.environment_id)

    def counted(rows: Iterable[CustomerRow]) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            statuses[row.status] += 1
            yield scope_values + written_values(row)

    report("writing", 0, total)
    bulk_insert(
        Customer,
        WRITTEN_ATTRIBUTES,
        counted(rows),
        on_progress=lambda done: report("writing", done, total),
    )
    if add_counts:
        customer_counts_add(scope=scope, deltas=statuses)
    return statuses


# -- Several writers at once ------------------------------------------------------------------


class SharedProgress:
    """Adds up the rows every writer has sent and reports the sum (from any thread)."""

    def __init__(self, on_progress: Callable[[int, int], None] | None, *, total: int):
        self.on_progress = on_progress
        self.total = total
        self.done_by_writer: dict[int, int] = {}
        self.lock = threading.Lock()
        self.report(0, 0)

    def report(self, writer: int, done: int) -> None:
        if self.on_progress is None:
            return
        with self.lock:
            self.done_by_writer[writer] = done
            self.on_progress(sum(self.done_by_writer.values()), self.total)

    def reporter(self, writer: int) -> Reporter:
        def report(phase: str, done: int, total: int | None) -> None:
            if phase == "writing":
                self.report(writer, done)

        return report


class WriterFailedError(Exception):
    """Another writer failed, so this one stops and rolls back too."""


@dataclass
class Written:
    statuses: Counter[str]
    with_parent: int = 0

    def add(self, other: "Written") -> None:
        self.statuses.update(other.statuses)
        self.with_parent += other.with_parent


def write_counted(
    *, rows: Iterable[CustomerRow], scope: Scope, report: Reporter, add_counts: bool = True
) -> Written:
    """write_customer_rows, also counting the rows that have a parent."""
    written = Written(statuses=Counter())

    def counting_parents(rows: Iterable[CustomerRow]) -> Iterator[CustomerRow]:
        for row in rows:
            written.with_parent += row.parent_id is not None
            yield row

    written.statuses = write_customer_rows(
        rows=counting_parents(rows), scope=scope, report=report, add_counts=add_counts
    )
    return written


# write(rows=, scope=, report=, add_counts=False): a writer's way of writing its rows (and,
# for the seeder, their events) in its transaction.
RowsWriter = Callable[..., Written]


def write_in_parallel(
    *,
    scope: Scope,
    sources: Sequence[Callable[[], Iterable[CustomerRow]]],
    progress: SharedProgress,
    write: RowsWriter = write_counted,
) -> Written:
    """Write each source's rows on a connection of its own, all or none.

    ``write`` writes one writer's rows in its transaction (``write_counted`` by default;
    the seeder's also records their events).

    Each writer is a thread with its own connection and transaction; the database does the
    work (indexing), so the threads hardly compete for Python's lock. Each source must be
    complete on its own (a row's parent in the same source or already stored) and give the
    same rows when called again (the undo below regenerates them). Every writer inserts its
    rows and checks their constraints (SET CONSTRAINTS ALL IMMEDIATE), then they wait for
    each other; only when all have succeeded do they add their counts and commit, one after
    the other (so their counts updates never wait on each other). If a commit fails after
    others succeeded, the rows of those are deleted again.
    """
    writers = len(sources)
    ready = threading.Barrier(writers)
    turns = [threading.Event() for _ in range(writers)]
    results: list[Written | None] = [None] * writers
    errors: list[BaseException] = []

    def checked(rows: Iterable[CustomerRow]) -> Iterator[CustomerRow]:
        for row in rows:
            if errors:  # another writer failed: stop early, this one rolls back too
                raise WriterFailedError("another writer failed")
            yield row

    def write_one(writer: int) -> None:
        try:
            with transaction.atomic():
                written = write(
                    rows=checked(sources[writer]()),
                    scope=scope,
                    report=progress.reporter(writer),
                    add_counts=False,
                )
                with connection.cursor() as cursor:
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                ready.wait()  # every writer's rows are in and checked
                turns[writer].wait()  # then commit in writer order
                if errors:
                    raise WriterFailedError("another writer failed")
                customer_counts_add(scope=scope, deltas=written.statuses)
            results[writer] = written  # committed
        except BaseException as error:
            errors.append(error)
            ready.abort()
        finally:
            if writer + 1 < writers:
                turns[writer + 1].set()
            connection.close()

    threads = [threading.Thread(target=write_one, args=(writer,)) for writer in range(writers)]
    turns[0].set()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        committed = [writer for writer, written in enumerate(results) if written is not None]
        if committed:
            undo_committed(scope=scope, sources=sources, committed=committed, results=results)
        raise next(
            (
                error
                for error in errors
                if not isinstance(error, threading.BrokenBarrierError | WriterFailedError)
            ),
            errors[0],
        )
    total = Written(statuses=Counter())
    for written in results:
        total.add(written)
    return total


def undo_committed(
    *,
    scope: Scope,
    sources: Sequence[Callable[[], Iterable[CustomerRow]]],
    committed: list[int],
    results: list[Written | None],
) -> None:
    """Undo the writers that committed before another failed: delete their rows (the
    sources give them again), their events and those events' webhook deliveries, and take
    them off the per-status counts, in one transaction."""
    ids = [row.id for writer in committed for row in sources[writer]()]
    statuses: Counter[str] = Counter()
    for writer in committed:
        statuses.update(results[writer].statuses)
    quote = connection.ops.quote_name
    events = quote(CustomerEvent._meta.db_table)
    in_scope = "tenant_id = %s AND environment_id = %s AND customer_id = ANY(%s)"
    deliveries = quote(WebhookDelivery._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        for deleted in (
            f"{quote(WebhookAttempt._meta.db_table)} WHERE delivery_id IN (SELECT id FROM"  # noqa: S608
            f" {deliveries} WHERE event_id IN (SELECT id FROM {events} WHERE {in_scope}))",
            f"{deliveries} WHERE event_id IN (SELECT id FROM {events} WHERE {in_scope})",  # noqa: S608
        ):
            cursor.execute(
                f"DELETE FROM {deleted}",  # noqa: S608 (table names)
                [scope.tenant_id, scope.environment_id, ids],
            )
        cursor.execute(
            f"DELETE FROM {events} WHERE {in_scope}",  # noqa: S608 (table name)
            [scope.tenant_id, scope.environment_id, ids],
        )
        cursor.execute(
            f"DELETE FROM {connection.ops.quote_name(Customer._meta.db_table)}"  # noqa: S608 (table name)
            " WHERE tenant_id = %s AND environment_id = %s AND id = ANY(%s)",
            [scope.tenant_id, scope.environment_id, ids],
        )
        customer_counts_add(scope=scope, deltas={s: -n for s, n in statuses.items()})
