"""Bulk inserts: COPY on PostgreSQL, ``bulk_create`` in batches elsewhere.

The import, the seeder and the import's events write through ``bulk_insert``: rows are
consumed as they are produced, so the database works while Python computes the next ones,
and memory holds one batch at a time (none at all for COPY).
"""

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

from django.db import connection, models

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
