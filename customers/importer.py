"""CSV import of customers into one scope: reading, checking and the bulk write.

``import_customers_csv`` is the whole import; the ``import_customers`` management command is
a thin shell around it. The contract's "Import" section is the specification. An import
writes every row or none, in one transaction:

1. Read the file record by record. Each row is checked on its own with the shared field
   rules (``customers.validation.clean_customer_fields``). The first bad row stops the
   import.
2. Each checked row goes straight on to the database (COPY on PostgreSQL, ``bulk_create``
   elsewhere) in batches of IMPORT_BATCH_ROWS, each followed by its rows' events, so the
   database indexes rows while Python reads the next ones, and memory holds one batch
   whatever the file's size. The database's unique indexes refuse an id seen before
   (in the file or anywhere) and an external id live twice in the scope.
3. Check the file as a whole, from what step 1 noted of the rows that have a parent (and
   nothing of the others): parent cycles, and parents that are neither in the file nor in
   the scope (asked of the database, where the file's rows are by then).

When the database refuses a row, the transaction is rolled back and the file is read again
(``earliest_problem``) to name the earliest offending line, as a refusal found while
reading would have.

Errors are ``CustomerImportError``; those about one record are ``ImportRowError``, which
names the physical line where the record starts (the header is line 1) and the field.
"""

import csv
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, NamedTuple

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

    parents = ParentLinks()  # what the whole-file checks need: the rows that have a parent
    try:
        with open(path, "rb") as csv_file, transaction.atomic():
            read = read_rows(binary_lines=csv_file, scope=scope, report=report, parents=parents)
            imported = write_in_batches(rows=read, scope=scope, actor=actor)
            report("writing", imported, imported)
            check_no_parent_cycles(parents=parents)
            check_parents_in_scope(parents=parents, scope=scope)
    except OSError as error:
        raise CustomerImportError(f"cannot read {os.fspath(path)!r}: {error.strerror}") from None
    except ImportRowError as error:
        # Rolled back. A row before it may have been refused by the database (a duplicate
        # id or live external id), which only shows at the end of a batch: name the earliest.
        raise earliest_problem(path=path, scope=scope, before_line=error.line) or error from None
    except IntegrityError as error:
        # The database refused a row (rolled back: nothing was written). Name the earliest
        # row it refused; if none is refused now, a concurrent change was the cause.
        problem = earliest_problem(path=path, scope=scope)
        if problem is not None:
            raise problem from None
        raise CustomerImportError(
            f"the import conflicts with a concurrent change and wrote nothing: {error}"
        ) from None
    return ImportResult(scope=scope, imported=imported, seconds=time.perf_counter() - started)


# Rows are written (and their events) this many at a time: memory holds one batch, whatever
# the file's size; within a batch the database indexes rows while Python reads the next.
IMPORT_BATCH_ROWS = 20_000


def write_in_batches(*, rows: Iterator[CustomerRow], scope: Scope, actor: Actor) -> int:
    """Write the rows and their ``customer.created`` events, a batch at a time; how many."""
    imported = 0
    while True:
        batch: list[CustomerRow] = []

        def collected(batch=batch) -> Iterator[CustomerRow]:
            for row in islice(rows, IMPORT_BATCH_ROWS):
                batch.append(row)
                yield row

        write_customer_rows(rows=collected(), scope=scope)
        if batch:
            customer_created_events_record(
                customers=(customer_row_object(row, scope) for row in batch),
                scope=scope,
                actor=actor,
            )
        imported += len(batch)
        if len(batch) < IMPORT_BATCH_ROWS:
            return imported


class ParentLinks:
    """The rows that have a parent: id -> (parent id, line). A cycle can only run through
    such rows, and only they can name a parent outside the scope; the rest of a file is
    never held."""

    def __init__(self):
        self.of: dict[str, tuple[str, int]] = {}

    def add(self, row: CustomerRow) -> None:
        if row.parent_id is not None:
            self.of[row.id] = (row.parent_id, row.line)

    def line_of(self, customer_id: str) -> int:
        return self.of[customer_id][1]


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
    parents: "ParentLinks | None" = None,
) -> Iterator[CustomerRow]:
    """Yield each checked row, in file order, as it is read (noting those with a parent).

    The header is read (and checked) at the first ``next()``. Duplicate ids and live
    external ids are left to the database's unique indexes (see earliest_problem).
    """
    records = csv_records(decoded_lines(binary_lines))
    columns = read_header(records)
    import_time = timezone.now()  # one instant for every missing timestamp
    count = 0
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
        if parents is not None:
            parents.add(row)
        count += 1
        yield row
        if count % PROGRESS_EVERY_ROWS == 0:
            report("reading", count, None)
    report("reading", count, None)


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


def earliest_problem(
    *, path: str | os.PathLike[str], scope: Scope, before_line: int | None = None
) -> ImportRowError | None:
    """The earliest row (before ``before_line``) that the database refuses or that repeats
    an earlier row's id or live external id, read again from the file after the rollback.

    Only a refused import comes here, so the normal path holds nothing of the file; this
    one holds a hash and a line number per row (not the rows). With ``before_line`` (a row
    there was refused on its own) parents are not checked: that row's refusal comes first.
    """
    first_line_of_id: dict[int, int] = {}
    first_line_of_live_external_id: dict[int, int] = {}
    problems: list[ImportRowError] = []
    with_parent: list[tuple[str, int]] = []
    batch: list[CustomerRow] = []

    def check_batch() -> None:
        problem = database_problem(rows=batch, scope=scope)
        if problem is not None:
            problems.append(problem)
        batch.clear()

    with open(path, "rb") as csv_file:
        for row in read_rows(binary_lines=csv_file, scope=scope, report=lambda *args: None):
            if before_line is not None and row.line >= before_line:
                break
            repeated = repeated_in_file(
                row=row, ids=first_line_of_id, live=first_line_of_live_external_id
            )
            if repeated is not None:
                problems.append(repeated)
                break  # anything found later in the file is later than this
            if row.parent_id is not None:
                with_parent.append((row.parent_id, row.line))
            batch.append(row)
            if len(batch) >= LOOKUP_BATCH_SIZE:
                check_batch()
    check_batch()
    if before_line is None and not problems:
        outside = [(p, line) for p, line in with_parent if hash(p) not in first_line_of_id]
        problem = outside_parent_problem(links=outside, scope=scope)
        if problem is not None:
            problems.append(problem)
    return min(problems, key=lambda problem: problem.line) if problems else None


def repeated_in_file(
    *, row: CustomerRow, ids: dict[int, int], live: dict[int, int]
) -> ImportRowError | None:
    """The row repeats an earlier row's id, or its external id while both are live."""
    first = ids.setdefault(hash(row.id), row.line)
    if first != row.line:
        return ImportRowError(
            line=row.line,
            field="id",
            message=f"id {row.id!r} appears twice in the file (first on line {first})",
        )
    if row.status != CustomerStatus.ARCHIVED:
        first = live.setdefault(hash(row.external_id), row.line)
        if first != row.line:
            return ImportRowError(
                line=row.line,
                field="external_id",
                message=f"external_id {row.external_id!r} is also on line {first};"
                " only one customer that is not archived may use it",
            )
    return None


def database_problem(*, rows: list[CustomerRow], scope: Scope) -> ImportRowError | None:
    """The earliest of ``rows`` whose id exists already or whose live external id is used
    by a live customer of the scope."""
    problems = database_problems(rows=rows, scope=scope, first_only=True)
    return min(problems, key=lambda problem: problem.line) if problems else None


def database_problems(
    *, rows: "list[CustomerRow] | list[RowKeys]", scope: Scope, first_only: bool = False
) -> list[ImportRowError]:
    """The rows whose id exists already or whose live external id is used by a live
    customer of the scope, in file order for each kind (``first_only``: the first of each)."""
    problems: list[ImportRowError] = []
    taken_ids = existing_ids(ids=[row.id for row in rows])
    for row in rows:
        if row.id in taken_ids:
            problems.append(
                ImportRowError(line=row.line, field="id", message=f"id {row.id!r} exists already")
            )
            if first_only:
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
            if first_only:
                break
    return problems


def check_parents_in_scope(*, parents: ParentLinks, scope: Scope) -> None:
    """Raise for the earliest row whose parent is neither in the file nor in the scope.

    Asked of the database once the rows are in (the file's rows are customers of the scope
    by then): the foreign key alone only says that the parent exists somewhere. Only
    primary-key lookups of the parents, a batch at a time: a query over the rows just
    written would be planned with no statistics for them (measured: 251 s for 100,000).
    """
    outside: list[str] = []
    children = list(parents.of)
    for batch in lookup_batches(children):
        parent_ids = sorted({parents.of[child][0] for child in batch})
        in_scope = customer_ids_in_scope(ids=parent_ids, scope=scope)
        outside += [child for child in batch if parents.of[child][0] not in in_scope]
    if outside:
        first = min(outside, key=parents.line_of)
        raise outside_parent_error(
            parent_id=parents.of[first][0], line=parents.line_of(first), scope=scope
        )


def outside_parent_error(*, parent_id: str, line: int, scope: Scope) -> ImportRowError:
    return ImportRowError(
        line=line,
        field="parent_customer_id",
        message=f"parent_customer_id {parent_id!r} is neither a row of this"
        f" file nor a customer of {scope}",
    )


def outside_parent_problem(*, links: list[tuple[str, int]], scope: Scope) -> ImportRowError | None:
    """The earliest of ``links`` (parent id, line), parents not in the file, whose parent
    is not a customer of the scope."""
    problems = outside_parent_problems(links=links, scope=scope, limit=1)
    return problems[0] if problems else None


def outside_parent_problems(
    *, links: list[tuple[str, int]], scope: Scope, limit: int | None = None
) -> list[ImportRowError]:
    """Those of ``links`` (parent id, line, in file order) whose parent is not a customer
    of the scope, at most ``limit``."""
    problems: list[ImportRowError] = []
    if not links:
        return problems
    parents_in_scope = customer_ids_in_scope(ids=[parent for parent, _ in links], scope=scope)
    for parent_id, line in links:
        if parent_id not in parents_in_scope:
            problems.append(outside_parent_error(parent_id=parent_id, line=line, scope=scope))
            if limit is not None and len(problems) >= limit:
                break
    return problems


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


def check_no_parent_cycles(*, parents: ParentLinks) -> None:
    """Raise for the earliest row that would be its own ancestor."""
    problems = parent_cycle_problems(parents=parents)
    if problems:
        raise min(problems, key=lambda problem: problem.line)


def parent_cycle_problems(*, parents: ParentLinks) -> list[ImportRowError]:
    """One problem per loop of parents, naming the loop's earliest row.

    Customers already stored cannot point at a row of the file, so only parents within the
    file can close a loop, and every row of a loop has a parent: the loop runs through
    ``parents`` alone.
    """
    parent_in_file = {
        customer_id: parent_id
        for customer_id, (parent_id, _) in parents.of.items()
        if parent_id in parents.of
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
            problems.append(cycle_problem(loop=loop, parents=parents))
        for walked_id in walk:
            state[walked_id] = finished
    return problems


def cycle_problem(*, loop: list[str], parents: ParentLinks) -> ImportRowError:
    first = min(loop, key=parents.line_of)
    if len(loop) == 1:
        message = f"parent_customer_id {first!r} is the customer itself"
    else:
        start = loop.index(first)
        ordered = loop[start:] + loop[:start] + [first]
        message = "parent_customer_id makes a cycle: " + " -> ".join(ordered)
    return ImportRowError(line=parents.line_of(first), field="parent_customer_id", message=message)


# -- The dry run: every check, nothing written ----------------------------------------------

DRY_RUN_MAX_PROBLEMS = 50
DRY_RUN_PREVIEW_ROWS = 10
# In a preview, what the import will decide (a new id, the import's time).
AT_IMPORT = None


class RowKeys(NamedTuple):
    """What ``database_problems`` reads of a row."""

    line: int
    id: str
    external_id: str
    status: str


@dataclass(frozen=True, slots=True)
class DryRunResult:
    rows: int  # records read that are customers (good or bad)
    problems: list[ImportRowError]  # the first ones, in line order
    problem_count: int  # all of them (more than ``problems`` holds when there are many)
    preview: list[dict[str, Any]]  # the first good rows as the import would store them
    complete: bool  # False: reading stopped early (a bad header, bad bytes, broken CSV)

    @property
    def importable(self) -> bool:
        return self.problem_count == 0 and self.complete


def dry_run_customers_csv(
    *,
    path: str | os.PathLike[str],
    tenant_id: str,
    environment_id: str,
    max_problems: int = DRY_RUN_MAX_PROBLEMS,
    preview_rows: int = DRY_RUN_PREVIEW_ROWS,
    on_progress: ProgressCallback | None = None,
) -> DryRunResult:
    """The import's checks on the whole file, writing nothing: each record with the shared
    field rules, ids and live external ids repeated in the file or taken in the database,
    parents outside the file and the scope, parent cycles. Unlike the import it goes on
    past a bad record, to count the problems and keep the first ``max_problems``.

    Holds two hashes per row (a set each: ids, live external ids; ~130 MB at a million
    rows, ~280 MB peak for the process, 35-50 s) and the rows that have a parent; the rows
    themselves a batch at a time, and only what the database checks read of them. Where a
    row repeats an earlier one, a second reading finds the earlier line (only then).
    """
    scope = existing_scope(tenant_id=tenant_id, environment_id=environment_id)
    started = time.perf_counter()
    problems: list[ImportRowError] = []
    count = 0
    problem_count = 0

    def found(problem: ImportRowError) -> None:
        nonlocal problem_count
        problem_count += 1
        problems.append(problem)
        if len(problems) > 2 * max_problems:  # keep the earliest lines, not every problem
            problems.sort(key=lambda problem: problem.line)
            del problems[max_problems:]

    def report(phase: str, done: int) -> None:
        if on_progress is not None:
            on_progress(
                ImportProgress(
                    phase=phase, done=done, total=None, seconds=time.perf_counter() - started
                )
            )

    seen_ids: set[int] = set()
    seen_live_external_ids: set[int] = set()
    repeats: list[tuple[int, str, str]] = []  # the earliest rows that repeat one: line, field

    def repeat(line: int, field: str, value: str) -> None:
        nonlocal problem_count
        problem_count += 1
        if len(repeats) < max_problems:  # in line order: the first are the earliest
            repeats.append((line, field, value))

    parents = ParentLinks()
    preview: list[dict[str, Any]] = []
    batch: list[RowKeys] = []
    complete = True
    import_time = timezone.now()
    report("reading", 0)
    try:
        with open(path, "rb") as csv_file:
            records = csv_records(decoded_lines(csv_file))
            columns = read_header(records)
            for line, cells in records:
                count += 1
                if count % PROGRESS_EVERY_ROWS == 0:
                    report("reading", count)
                if len(cells) != len(columns):
                    found(
                        ImportRowError(
                            line=line,
                            field=None,
                            message=f"the record has {len(cells)} cells but the header has"
                            f" {len(columns)}",
                        )
                    )
                    continue
                named = dict(zip(columns, cells, strict=True))
                try:
                    row = customer_row(line=line, cells=named, scope=scope, now=import_time)
                except ImportRowError as problem:
                    found(problem)
                    continue
                id_hash = hash(row.id)
                if id_hash in seen_ids:
                    repeat(line, "id", row.id)
                    continue
                seen_ids.add(id_hash)
                if row.status != CustomerStatus.ARCHIVED:
                    external_id_hash = hash(row.external_id)
                    if external_id_hash in seen_live_external_ids:
                        repeat(line, "external_id", row.external_id)
                        continue
                    seen_live_external_ids.add(external_id_hash)
                parents.add(row)
                if len(preview) < preview_rows:
                    preview.append(preview_of(row=row, cells=named))
                # Only what the database checks read: a batch of rows would be ~1 KB each.
                batch.append(RowKeys(row.line, row.id, row.external_id, row.status))
                if len(batch) >= LOOKUP_BATCH_SIZE:
                    for problem in database_problems(rows=batch, scope=scope):
                        found(problem)
                    batch.clear()
    except ImportRowError as problem:  # the header, bytes that are not UTF-8, broken CSV
        found(problem)
        complete = False
    except OSError as error:
        raise CustomerImportError(f"cannot read {os.fspath(path)!r}: {error.strerror}") from None
    report("checking", count)
    if complete:
        for problem in database_problems(rows=batch, scope=scope):
            found(problem)
        outside = [
            (parent_id, line)
            for parent_id, line in parents.of.values()
            if hash(parent_id) not in seen_ids
        ]
        for problem in outside_parent_problems(links=outside, scope=scope):
            found(problem)
        for problem in parent_cycle_problems(parents=parents):
            found(problem)
    if repeats:
        problems.extend(repeat_problems(path=path, scope=scope, repeats=repeats))
    problems.sort(key=lambda problem: problem.line)
    return DryRunResult(
        rows=count,
        problems=problems[:max_problems],
        problem_count=problem_count,
        preview=preview,
        complete=complete,
    )


def repeat_problems(
    *, path: str | os.PathLike[str], scope: Scope, repeats: list[tuple[int, str, str]]
) -> list[ImportRowError]:
    """The problems of rows that repeat an earlier row's id or live external id, naming
    the earlier line: found by reading the file again, up to the last of ``repeats``."""
    wanted = {(field, hash(value)) for _, field, value in repeats}
    first_line: dict[tuple[str, int], int] = {}
    last_line = max(line for line, _, _ in repeats)
    now = timezone.now()
    with open(path, "rb") as csv_file:
        records = csv_records(decoded_lines(csv_file))
        columns = read_header(records)
        for line, cells in records:
            if line >= last_line:
                break
            if len(cells) != len(columns):
                continue
            try:
                row = customer_row(
                    line=line, cells=dict(zip(columns, cells, strict=True)), scope=scope, now=now
                )
            except ImportRowError:
                continue
            keys = [("id", hash(row.id))]
            if row.status != CustomerStatus.ARCHIVED:
                keys.append(("external_id", hash(row.external_id)))
            for key in keys:
                if key in wanted:
                    first_line.setdefault(key, line)
    problems = []
    for line, field, value in repeats:
        first = first_line.get((field, hash(value)), "?")
        message = (
            f"id {value!r} appears twice in the file (first on line {first})"
            if field == "id"
            else f"external_id {value!r} is also on line {first};"
            " only one customer that is not archived may use it"
        )
        problems.append(ImportRowError(line=line, field=field, message=message))
    return problems


def preview_of(*, row: CustomerRow, cells: dict[str, str]) -> dict[str, Any]:
    """A row as the import would store it, by the API's field names; what the import
    decides itself (a new id, the import's time for missing timestamps) is ``AT_IMPORT``."""
    given = {column for column, text in cells.items() if text != ""}
    values = row._asdict()
    preview: dict[str, Any] = {"line": row.line}
    for field in FIELD_NAMES:
        if field in SCOPE_COLUMNS:
            continue
        attribute = "parent_id" if field == "parent_customer_id" else field
        value = values[attribute]
        if field == "id" and "id" not in given:
            value = AT_IMPORT
        elif field in TIMESTAMP_COLUMNS:
            value = value.isoformat() if given & TIMESTAMP_COLUMNS else AT_IMPORT
        preview[field] = value
    return preview
