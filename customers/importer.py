"""CSV import of customers into one scope: reading, checking and the bulk write.

``import_customers_csv`` is the whole import; the ``import_customers`` management command is
a thin shell around it. The contract's "Import" section is the specification. An import
writes every row or none, in one transaction:

1. Read the file record by record. Each row is checked on its own with the shared field
   rules (``customers.validation.clean_customer_fields``) and against the rows before it
   (an id, or an external_id of a customer that is not archived, seen twice). The first bad
   row stops the import.
2. Each checked row goes straight on to the database (COPY on PostgreSQL, ``bulk_create``
   elsewhere), so the database indexes rows while Python reads the next ones: on two cores
   the import takes about as long as the slower of the two, not their sum.
3. Check the file as a whole: parent cycles, and parents that are neither in the file nor
   in the scope. The database's own constraints refuse an id that exists already or an
   external_id live in the scope; when they do, the transaction is rolled back and batched
   queries find the earliest offending line for the message.

The rows stay in memory until the end, for those checks (docs/benchmarks.md has the peak).

Errors are ``CustomerImportError``; those about one record are ``ImportRowError``, which
names the physical line where the record starts (the header is line 1) and the field.
"""

import csv
import json
import os
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from customers.bulk import CustomerRow, Reporter, customer_row_object, write_customer_rows
from customers.events import Actor, customer_created_events_record
from customers.ids import new_customer_id
from customers.models import Customer, CustomerStatus, Environment, Tenant, derived_keys_for
from customers.scope import Scope
from customers.selectors import customers_in_scope
from customers.shape import (
    FIELD_NAMES,
    NULLABLE_FIELDS,
    REQUIRED_FIELDS,
    SCOPE_FIELDS,
    TIMESTAMP_FIELDS,
)
from customers.validation import CustomerValidationError, clean_customer_fields

# Every field of the contract is a column an import may have (an export imports as it is).
KNOWN_COLUMNS = frozenset(FIELD_NAMES)
# Allowed so that an export imports as it is, but only when they repeat the command's scope.
SCOPE_COLUMNS = SCOPE_FIELDS
NULL_WHEN_EMPTY_COLUMNS = NULLABLE_FIELDS
# An empty cell leaves these out, so that the import's default applies.
DEFAULT_WHEN_EMPTY_COLUMNS = frozenset({"id", "status", *TIMESTAMP_FIELDS})
TIMESTAMP_COLUMNS = frozenset(TIMESTAMP_FIELDS)
UTF8_BOM = b"\xef\xbb\xbf"

PROGRESS_EVERY_ROWS = 5_000
IMPORT_ACTOR = Actor.command("import_customers")
LOOKUP_BATCH_SIZE = 50_000


class CustomerImportError(Exception):
    """The import was refused and nothing was written; the message says why."""


class ImportRowError(CustomerImportError):
    """One record is bad. ``message`` names the field (when there is one) and the problem."""

    def __init__(self, *, line: int, field: str | None, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ImportProgress:
    phase: str  # "reading" (total still unknown) or "writing"
    done: int
    total: int | None
    seconds: float  # since this phase began


ProgressCallback = Callable[[ImportProgress], None]


@dataclass(frozen=True, slots=True)
class ImportResult:
    scope: Scope
    imported: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.imported / self.seconds if self.seconds > 0 else 0.0


def import_customers_csv(
    *,
    path: str | os.PathLike[str],
    tenant_id: str,
    environment_id: str,
    on_progress: ProgressCallback | None = None,
    actor: Actor = IMPORT_ACTOR,
) -> ImportResult:
    """Import every record of the CSV file at ``path`` into the scope, or none of them.

    Each customer gets its ``customer.created`` event, by ``actor``, in the same transaction.
    """
    started = time.perf_counter()
    scope = existing_scope(tenant_id=tenant_id, environment_id=environment_id)

    phase_started: dict[str, float] = {}

    def report(phase: str, done: int, total: int | None) -> None:
        if on_progress is not None:
            now = time.perf_counter()
            seconds = now - phase_started.setdefault(phase, now)
            on_progress(ImportProgress(phase=phase, done=done, total=total, seconds=seconds))

    rows: list[CustomerRow] = []  # every row read, kept for the whole-file checks
    try:
        with open(path, "rb") as csv_file, transaction.atomic():
            read = read_rows(binary_lines=csv_file, scope=scope, report=report, into=rows)
            # While the rows stream, the progress shows the reading; the writing keeps pace.
            write_customer_rows(rows=read, scope=scope, report=reading_only(report))
            report("writing", len(rows), len(rows))
            check_no_parent_cycles(rows=rows)
            check_parents_in_scope(rows=rows, scope=scope)
            customer_created_events_record(
                customers=(customer_row_object(row, scope) for row in rows),
                scope=scope,
                actor=actor,
            )
    except OSError as error:
        raise CustomerImportError(f"cannot read {os.fspath(path)!r}: {error.strerror}") from None
    except IntegrityError as error:
        # The database refused a row (rolled back: nothing was written). Name the earliest
        # row it refused; if none is refused now, a concurrent change was the cause.
        check_rows_against_database(rows=rows, scope=scope)
        raise CustomerImportError(
            f"the import conflicts with a concurrent change and wrote nothing: {error}"
        ) from None
    return ImportResult(scope=scope, imported=len(rows), seconds=time.perf_counter() - started)


def reading_only(report: Reporter) -> Reporter:
    def forward(phase: str, done: int, total: int | None) -> None:
        if phase == "reading":
            report(phase, done, total)

    return forward


def existing_scope(*, tenant_id: str, environment_id: str) -> Scope:
    """The scope to import into. Unlike the API's setup commands, an import creates nothing."""
    if not Tenant.objects.filter(id=tenant_id).exists():
        raise CustomerImportError(f"tenant {tenant_id!r} does not exist")
    environment = Environment.objects.filter(id=environment_id).first()
    if environment is None:
        raise CustomerImportError(f"environment {environment_id!r} does not exist")
    if environment.tenant_id != tenant_id:
        raise CustomerImportError(
            f"environment {environment_id!r} belongs to tenant {environment.tenant_id!r},"
            f" not {tenant_id!r}"
        )
    return environment.scope


# -- Step 1: reading, each row on its own and against the rows before it ---------------------


def read_rows(
    *,
    binary_lines: Iterable[bytes],
    scope: Scope,
    report: Reporter,
    into: list[CustomerRow],
) -> Iterator[CustomerRow]:
    """Yield each checked row, in file order, as it is read; also appends it to ``into``.

    The header is read (and checked) at the first ``next()``.
    """
    records = csv_records(decoded_lines(binary_lines))
    columns = read_header(records)
    import_time = timezone.now()  # one instant for every missing timestamp
    id_index = columns.index("id") if "id" in columns else None
    rows = into
    line_of_given_id: dict[str, int] = {}
    line_of_live_external_id: dict[str, int] = {}
    report("reading", 0, None)
    for line, cells in records:
        if len(cells) != len(columns):
            raise ImportRowError(
                line=line,
                field=None,
                message=f"the record has {len(cells)} cells but the header has {len(columns)}",
            )
        row = customer_row(
            line=line,
            cells=dict(zip(columns, cells, strict=True)),
            scope=scope,
            now=import_time,
        )
        if row.id in line_of_given_id:
            raise ImportRowError(
                line=line,
                field="id",
                message=f"id {row.id!r} appears twice in the file"
                f" (first on line {line_of_given_id[row.id]})",
            )
        if id_index is not None and cells[id_index]:
            line_of_given_id[row.id] = line
        if row.status != CustomerStatus.ARCHIVED:
            first_line = line_of_live_external_id.setdefault(row.external_id, line)
            if first_line != line:
                raise ImportRowError(
                    line=line,
                    field="external_id",
                    message=f"external_id {row.external_id!r} is also on line {first_line};"
                    " only one customer that is not archived may use it",
                )
        rows.append(row)
        yield row
        if len(rows) % PROGRESS_EVERY_ROWS == 0:
            report("reading", len(rows), None)
    report("reading", len(rows), None)


def decoded_lines(binary_lines: Iterable[bytes]) -> Iterator[str]:
    """The file's lines as text, each decoded on its own so that a bad byte names its line."""
    for number, raw_line in enumerate(binary_lines, start=1):
        if number == 1 and raw_line.startswith(UTF8_BOM):
            raw_line = raw_line[len(UTF8_BOM) :]
        try:
            yield raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportRowError(
                line=number,
                field=None,
                message=f"the line is not valid UTF-8 (byte {error.start + 1})",
            ) from None


def csv_records(lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, its cells) for each record; a quoted cell may span lines."""
    reader = csv.reader(lines, strict=True)
    while True:
        start_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise ImportRowError(
                line=start_line, field=None, message=f"the record is not valid CSV: {error}"
            ) from None
        if cells:  # a blank line holds no record
            yield start_line, cells


def read_header(records: Iterator[tuple[int, list[str]]]) -> list[str]:
    """The column names, checked; a header may sit below blank lines."""
    first_record = next(records, None)
    if first_record is None:
        raise ImportRowError(
            line=1, field=None, message="the file is empty; its first line must be the header"
        )
    line, columns = first_record
    seen: set[str] = set()
    for column in columns:
        if column not in KNOWN_COLUMNS:
            raise ImportRowError(
                line=line,
                field=column,
                message=f"unknown column {column!r}; the columns are the API's field names: "
                + ", ".join(FIELD_NAMES),
            )
        if column in seen:
            raise ImportRowError(
                line=line, field=column, message=f"the column {column!r} appears twice"
            )
        seen.add(column)
    for column in REQUIRED_FIELDS:
        if column not in seen:
            raise ImportRowError(
                line=line, field=column, message=f"the column {column!r} is required"
            )
    return columns


def customer_row(
    *,
    line: int,
    cells: dict[str, str],
    scope: Scope,
    now: datetime,
) -> CustomerRow:
    """One record checked with the shared field rules, the import's defaults filled in."""
    for column, expected in zip(
        SCOPE_COLUMNS, (scope.tenant_id, scope.environment_id), strict=True
    ):
        if column in cells and cells[column] != expected:
            raise ImportRowError(
                line=line,
                field=column,
                message=f"{column} {cells[column]!r} differs from the scope imported into"
                f" ({expected!r}); a file may only repeat that scope",
            )
    try:
        fields = clean_customer_fields(api_values(line=line, cells=cells))
    except CustomerValidationError as error:
        raise ImportRowError(
            line=line, field=error.first_field, message=error.first_message
        ) from None
    created_at = fields.get("created_at") or fields.get("updated_at") or now
    values = {
        "id": fields.get("id") or new_customer_id(),
        "external_id": fields["external_id"],
        "name": fields["name"],
        "email": fields.get("email"),
        "address_line1": fields.get("address_line1", ""),
        "address_line2": fields.get("address_line2", ""),
        "address_city": fields.get("address_city", ""),
        "address_state": fields.get("address_state", ""),
        "address_postal_code": fields.get("address_postal_code", ""),
        "address_country": fields.get("address_country", ""),
        "parent_id": fields.get("parent_customer_id"),
        "metadata": fields.get("metadata", {}),
        "status": fields.get("status", CustomerStatus.PUBLISHED.value),
        "created_at": created_at,
        # Only one timestamp given: the other is the same instant, never a later import time.
        "updated_at": fields.get("updated_at") or created_at,
    }
    derived_keys = derived_keys_for(
        name=values["name"], email=values["email"], external_id=values["external_id"]
    )
    return CustomerRow(line=line, **values, derived_keys=derived_keys)


def api_values(*, line: int, cells: dict[str, str]) -> dict[str, Any]:
    """Cells turned into the values the API would receive, for the shared field rules.

    Only what CSV cannot say is decided here: what an empty cell means, and the JSON and
    timestamp syntax. A cell that cannot be parsed is passed on as text, so that the
    field rules reject it with their own message.
    """
    values: dict[str, Any] = {}
    for column, text in cells.items():
        if column in SCOPE_COLUMNS or (text == "" and column in DEFAULT_WHEN_EMPTY_COLUMNS):
            continue
        if column in NULL_WHEN_EMPTY_COLUMNS:
            values[column] = text or None
        elif column == "metadata":
            values[column] = parsed_metadata(line=line, text=text)
        elif column in TIMESTAMP_COLUMNS:
            values[column] = parsed_timestamp(text)
        else:
            values[column] = text
    return values


def parsed_metadata(*, line: int, text: str) -> Any:
    if text == "":
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportRowError(
            line=line,
            field="metadata",
            message=f"metadata is not valid JSON: {error.msg} (character {error.pos + 1})",
        ) from None
    except RecursionError:
        raise ImportRowError(
            line=line, field="metadata", message="metadata is not valid JSON: nested too deeply"
        ) from None


def parsed_timestamp(text: str) -> datetime | str:
    """The instant in UTC; a time without an offset stays naive, for the field rules to refuse."""
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None or value.tzinfo is UTC:  # `Z` and `+00:00` parse as UTC
            return value
        # Converting here also refuses instants that UTC cannot hold (0001-01-01T00:00+01:00).
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        return text


# -- Step 2: the file as a whole, against the database and itself ---------------------------


def check_rows_against_database(*, rows: list[CustomerRow], scope: Scope) -> None:
    """Raise for the earliest row whose id, external_id or parent the database contradicts."""
    problems: list[ImportRowError] = []
    ids_in_file = {row.id: row for row in rows}

    taken_ids = existing_ids(ids=[row.id for row in rows])
    for row in rows:
        if row.id in taken_ids:
            problems.append(
                ImportRowError(line=row.line, field="id", message=f"id {row.id!r} exists already")
            )
            break  # rows are in file order: the first is the earliest

    live_rows = [row for row in rows if row.status != CustomerStatus.ARCHIVED]
    taken = live_external_ids_in_scope(
        external_ids=[row.external_id for row in live_rows], scope=scope
    )
    for row in live_rows:
        if row.external_id in taken:
            problems.append(
                ImportRowError(
                    line=row.line,
                    field="external_id",
                    message=f"external_id {row.external_id!r} is already used by customer"
                    f" {taken[row.external_id]!r} of {scope}, which is not archived",
                )
            )
            break

    parent_problem = outside_parent_problem(rows=rows, scope=scope, ids_in_file=ids_in_file)
    if parent_problem is not None:
        problems.append(parent_problem)

    if problems:
        raise min(problems, key=lambda problem: problem.line)


def check_parents_in_scope(*, rows: list[CustomerRow], scope: Scope) -> None:
    """Raise for the earliest row whose parent is neither in the file nor in the scope.

    (The foreign key only says that the parent exists somewhere.)
    """
    problem = outside_parent_problem(rows=rows, scope=scope, ids_in_file={row.id for row in rows})
    if problem is not None:
        raise problem


def outside_parent_problem(
    *, rows: list[CustomerRow], scope: Scope, ids_in_file: Container[str]
) -> ImportRowError | None:
    rows_with_outside_parent = [
        row for row in rows if row.parent_id is not None and row.parent_id not in ids_in_file
    ]
    if not rows_with_outside_parent:
        return None
    parents_in_scope = customer_ids_in_scope(
        ids=[row.parent_id for row in rows_with_outside_parent], scope=scope
    )
    for row in rows_with_outside_parent:
        if row.parent_id not in parents_in_scope:
            return ImportRowError(
                line=row.line,
                field="parent_customer_id",
                message=f"parent_customer_id {row.parent_id!r} is neither a row of this"
                f" file nor a customer of {scope}",
            )
    return None


def lookup_batches(values: list[str]) -> Iterator[list[str]]:
    # SQLite caps the parameters of one query (Django assumes 999); PostgreSQL gets one array.
    limit = connection.features.max_query_params
    size = LOOKUP_BATCH_SIZE if limit is None else min(LOOKUP_BATCH_SIZE, limit - 10)
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch


def attribute_in(*, attribute: str, values: list[str]) -> Q | RawSQL:
    """A filter on ``attribute IN values``.

    On PostgreSQL it is ``= ANY(%s)`` with one array parameter: an ``IN`` of thousands of
    placeholders costs several times more to build, send and plan (measured ~4x).
    """
    if connection.vendor != "postgresql":
        return Q(**{f"{attribute}__in": values})
    quote = connection.ops.quote_name
    column = f"{quote(Customer._meta.db_table)}.{quote(Customer._meta.get_field(attribute).column)}"
    # Only quoted names from the model go into the SQL; the values are one parameter.
    return RawSQL(f"{column} = ANY(%s)", (values,), output_field=BooleanField())  # noqa: S611


def existing_ids(*, ids: list[str]) -> set[str]:
    """Those of ``ids`` that any customer has: ids are global primary keys."""
    found: set[str] = set()
    for batch in lookup_batches(ids):
        found.update(
            Customer.objects.filter(attribute_in(attribute="id", values=batch)).values_list(
                "id", flat=True
            )
        )
    return found


def live_external_ids_in_scope(*, external_ids: list[str], scope: Scope) -> dict[str, str]:
    """external_id -> id of the scope's customers that are not archived and use one of them."""
    taken: dict[str, str] = {}
    for batch in lookup_batches(external_ids):
        taken.update(
            customers_in_scope(scope=scope)
            .filter(attribute_in(attribute="external_id", values=batch))
            .exclude(status=CustomerStatus.ARCHIVED)
            .values_list("external_id", "id")
        )
    return taken


def customer_ids_in_scope(*, ids: list[str], scope: Scope) -> set[str]:
    """Those of ``ids`` that are customers of the scope, whatever their status."""
    found: set[str] = set()
    for batch in lookup_batches(ids):
        found.update(
            customers_in_scope(scope=scope)
            .filter(attribute_in(attribute="id", values=batch))
            .values_list("id", flat=True)
        )
    return found


def check_no_parent_cycles(*, rows: list[CustomerRow]) -> None:
    """Raise for the earliest row that would be its own ancestor.

    Customers already stored cannot point at a row of the file, so only parents within the
    file can close a loop.
    """
    row_by_id = {row.id: row for row in rows}
    parent_in_file = {
        row.id: row.parent_id
        for row in rows
        if row.parent_id is not None and row.parent_id in row_by_id
    }
    on_current_walk, finished = 1, 2
    state: dict[str, int] = {}
    problems: list[ImportRowError] = []
    for start in parent_in_file:
        walk: list[str] = []
        customer_id: str | None = start
        while customer_id in parent_in_file and customer_id not in state:
            state[customer_id] = on_current_walk
            walk.append(customer_id)
            customer_id = parent_in_file[customer_id]
        if customer_id is not None and state.get(customer_id) == on_current_walk:
            loop = walk[walk.index(customer_id) :]
            problems.append(cycle_problem(loop=loop, row_by_id=row_by_id))
        for walked_id in walk:
            state[walked_id] = finished
    if problems:
        raise min(problems, key=lambda problem: problem.line)


def cycle_problem(*, loop: list[str], row_by_id: dict[str, CustomerRow]) -> ImportRowError:
    first = min(loop, key=lambda customer_id: row_by_id[customer_id].line)
    if len(loop) == 1:
        message = f"parent_customer_id {first!r} is the customer itself"
    else:
        start = loop.index(first)
        ordered = loop[start:] + loop[:start] + [first]
        message = "parent_customer_id makes a cycle: " + " -> ".join(ordered)
    return ImportRowError(line=row_by_id[first].line, field="parent_customer_id", message=message)


# -- Step 3: the write ---------------------------------------------------------------------
