"""Deterministic, realistic customers in bulk: `seed_customers` and the benchmark use them.

``seed_customer_rows`` is pure: the same scope, count and seed give the same rows, ids
included, and ids depend on all three, so seeding another scope (or with another seed)
never collides. It yields ``customers.importer.CustomerRow`` tuples, which
``seed_customers`` streams through the importer's writer (COPY on PostgreSQL, one
connection per core; all or nothing) along with the per-status counts, and
``write_seed_csv`` writes as a file that ``import_customers`` reads.

Made for millions of rows: every value that repeats (names, streets, metadata objects,
ids' alphabet) is built once; a row costs a dozen ``random()`` calls, a few f-strings and
two datetimes. ``created_at`` grows with the row number across ``SPAN`` (customers sign up
over the years), so a parent, always chosen among earlier company rows of the same block
in O(1), was created before its child.
"""

import csv
import functools
import json
import os
import random
import time
import unicodedata
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from django.db import IntegrityError, connection, transaction

from customers.bulk import (
    CustomerRow,
    Reporter,
    SharedProgress,
    Written,
    customer_row_object,
    write_counted,
    write_in_parallel,
)
from customers.events import Actor, customer_created_events_record
from customers.exports import COLUMNS as EXPORT_COLUMNS
from customers.ids import CUSTOMER_ID_PREFIX, ULID_LENGTH, ulid_bytes
from customers.models import (
    Customer,
    CustomerEvent,
    CustomerStatus,
    WebhookDelivery,
    derived_keys_for,
)
from customers.representation import rfc3339
from customers.scope import Scope
from customers.selectors import ROW_COLUMNS
from customers.services import environment_ensure

# The words customers are made of (companies, people, places, metadata values).
COMPANY_FIRST = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Pied Piper",
    "Vandelay",
    "Dunder",
    "Aperture",
    "Black Mesa",
    "Oscorp",
    "Nakatomi",
    "Gringotts",
    "Monarch",
    "Blue Sun",
    "Massive Dynamic",
    "Prestige",
    "Octan",
    "Zorg",
    "Atlas",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Adatum",
    "Bluth",
    "Sterling",
    "Duff",
    "Krusty",
    "Ollivander",
    "Weyland",
    "Yoyodyne",
    "Zenith",
]
COMPANY_SECOND = [
    "Analytics",
    "Cloud",
    "Labs",
    "Logistics",
    "Health",
    "Energy",
    "Media",
    "Robotics",
    "Payments",
    "Foods",
    "Travel",
    "Security",
    "Studios",
    "Systems",
    "Ventures",
    "Networks",
]
COMPANY_SUFFIX = ["Inc", "LLC", "Ltd", "GmbH", "SAS", "Corp", "Co", "AG", "BV", "Pty Ltd"]
PEOPLE = [
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Alan",
    "Katherine",
    "Dennis",
    "Barbara",
    "Ken",
    "Radia",
    "Tim",
    "Frances",
    "Guido",
    "Hedy",
    "Edsger",
    "Sophie",
    "José",
    "Zoë",
    "Åsa",
    "Jürgen",
]
MAILBOXES = ["billing", "finance", "accounts", "ap", "admin", "ops"]
PLACES = [
    ("San Francisco", "CA", "94105", "US"),
    ("Austin", "TX", "78701", "US"),
    ("New York", "NY", "10001", "US"),
    ("Seattle", "WA", "98101", "US"),
    ("Toronto", "ON", "M5H 2N2", "CA"),
    ("London", "", "EC1A 1BB", "GB"),
    ("Berlin", "", "10115", "DE"),
    ("Paris", "", "75002", "FR"),
    ("Amsterdam", "", "1012 JS", "NL"),
    ("Stockholm", "", "111 52", "SE"),
    ("Bengaluru", "KA", "560001", "IN"),
    ("Sydney", "NSW", "2000", "AU"),
    ("São Paulo", "SP", "01310-100", "BR"),
    ("Tokyo", "", "100-0005", "JP"),
]
STREETS = ["Main Street", "Market St", "Innovation Ave", "King Street", "Harbour Road", "Elm Way"]
PLAN_TIERS = ["free", "starter", "growth", "enterprise"]
REGIONS = ["us-east", "us-west", "eu-central", "ap-south"]

START = datetime(2022, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)  # created_at runs from START over three years
UPDATE_SPAN = timedelta(days=180)  # how long after its creation a customer was last changed
PARENT_RATE = 0.10
PERSON_RATE = 0.15  # customers that are people rather than companies
NO_EMAIL_RATE = 0.05
CAPITALISED_EMAIL_RATE = 0.03  # stored as given ("Billing@..."), matched case-insensitively
NEVER_UPDATED_RATE = 0.40
NO_METADATA_RATE = 0.10
ACCOUNT_MANAGER_RATE = 0.30
SUITE_RATE = 0.25  # an address_line2
# Cumulative: published 80%, draft 12%, archived 8%.
PUBLISHED_BELOW, DRAFT_BELOW = 0.80, 0.92

SURNAMES = [
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Turing",
    "Johnson",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Allen",
    "van Rossum",
    "Lamarr",
    "Dijkstra",
    "Wilson",
    "García",
    "Müller",
    "Ström",
    "Okafor",
    "Nakamura",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Chen",
    "Singh",
    "Silva",
    "Ahmed",
]
PERSONAL_MAIL_DOMAINS = ["example.net", "example.org", "mail.example.com"]


def ascii_word(text: str) -> str:
    """``"Jürgen"`` -> ``"jurgen"``, ``"van Rossum"`` -> ``"vanrossum"``: for email addresses."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(character for character in folded.lower() if character.isalnum())


# Every company name (6,400) with the word its email domains start with.
COMPANIES = [
    (f"{first} {second} {suffix}", ascii_word(first))
    for first in COMPANY_FIRST
    for second in COMPANY_SECOND
    for suffix in COMPANY_SUFFIX
]
PERSONS = [
    (f"{first} {last}", f"{ascii_word(first)}.{ascii_word(last)}")
    for first in PEOPLE
    for last in SURNAMES
]
LINE1 = [f"{number} {street}" for number in range(1, 1000) for street in STREETS]
SUITES = [f"Suite {number}" for number in range(100, 900)]
# Shared, never-mutated metadata objects (rows hold references to them).
NO_METADATA: dict[str, str] = {}
PLAIN_METADATA = [
    {"plan_tier": tier, "region": region} for tier in PLAN_TIERS for region in REGIONS
]
MANAGED_METADATA = [
    {**plain, "account_manager": manager} for plain in PLAIN_METADATA for manager in PEOPLE
]

START_MS = int(START.timestamp()) * 1000
SPAN_US = SPAN // timedelta(microseconds=1)
UPDATE_SPAN_US = UPDATE_SPAN // timedelta(microseconds=1)


# Rows are generated in blocks, each from its own random generator (and a branch's parent
# is an earlier company of its block): any block can be generated on its own, so several
# writers can seed one scope in parallel, and the rows never depend on how many do.
SEED_BLOCK_SIZE = 100_000


def seed_blocks(count: int) -> list[range]:
    """The row numbers (1-based) of each block of a seeding of ``count`` customers."""
    return [
        range(first, min(first + SEED_BLOCK_SIZE, count + 1))
        for first in range(1, count + 1, SEED_BLOCK_SIZE)
    ]


def seed_customer_rows(
    *, scope: Scope, count: int, seed: int, external_ids: str | None = None
) -> Iterator[CustomerRow]:
    """``count`` customers of ``scope``, the same ones for the same arguments.

    Row ``n`` (``line``) has external id ``external_ids.format(n)`` (default
    ``acct_<seed>_<n, 7 digits>``); about 10% are branches of an earlier company row
    (``parent_id``); the rest are companies and people.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if count > SPAN_US:
        raise ValueError(f"at most {SPAN_US} customers fit in the creation span")
    for block in seed_blocks(count):
        yield from seed_block_rows(
            scope=scope, count=count, seed=seed, numbers=block, external_ids=external_ids
        )


def seed_blocks_rows(
    *, scope: Scope, count: int, seed: int, writer: int, writers: int
) -> Iterator[CustomerRow]:
    """The rows of every ``writers``-th block of a seeding, from block ``writer`` on."""
    for block in seed_blocks(count)[writer::writers]:
        yield from seed_block_rows(scope=scope, count=count, seed=seed, numbers=block)


def seed_block_rows(
    *, scope: Scope, count: int, seed: int, numbers: range, external_ids: str | None = None
) -> Iterator[CustomerRow]:
    """The rows ``numbers`` (one block of ``seed_blocks(count)``) of a seeding."""
    block = (numbers.start - 1) // SEED_BLOCK_SIZE
    rng = random.Random(f"seed_customers/{seed}/{scope.tenant_id}/{scope.environment_id}/{block}")
    rand, random_bytes = rng.random, rng.randbytes
    step_us = SPAN_US // max(count, 1)
    one_us = timedelta(microseconds=1)
    prefix = CUSTOMER_ID_PREFIX
    external_id_of = (external_ids or f"acct_{seed}_{{:07d}}").format
    companies, persons, line1s, suites = COMPANIES, PERSONS, LINE1, SUITES
    places, mailboxes, mail_domains = PLACES, MAILBOXES, PERSONAL_MAIL_DOMAINS
    plain_metadata, managed_metadata = PLAIN_METADATA, MANAGED_METADATA
    n_places, n_mailboxes, n_mail_domains = len(places), len(mailboxes), len(mail_domains)
    n_companies, n_persons, n_line1s = len(companies), len(persons), len(line1s)
    n_plain, n_managed, n_suites = len(plain_metadata), len(managed_metadata), len(suites)
    suite_scale = n_suites / SUITE_RATE
    published, draft, archived = (
        CustomerStatus.PUBLISHED.value,
        CustomerStatus.DRAFT.value,
        CustomerStatus.ARCHIVED.value,
    )
    start_ms = START_MS
    # Companies without a parent, the possible parents: their ids' 26 characters, packed,
    # and their company number (so that a branch carries its parent's name).
    root_ids = bytearray()
    root_companies = array("H")
    roots = 0

    for number in numbers:
        created_us = (number - 1) * step_us + int(rand() * step_us)
        ms = start_ms + created_us // 1000
        ulid = ulid_bytes(ms, random_bytes(16))
        customer_id = prefix + ulid.decode()
        external_id = external_id_of(number)
        city, state, postal_code, country = places[int(rand() * n_places)]

        kind = rand()
        parent_id = None
        if roots and kind < PARENT_RATE:
            pick = int(rand() * roots) * ULID_LENGTH
            parent_id = prefix + root_ids[pick : pick + ULID_LENGTH].decode()
            company, word = companies[root_companies[pick // ULID_LENGTH]]
            name = f"{company} ({city})"
            domain = f"{word}{number}.example.com"
            mailbox = mailboxes[int(rand() * n_mailboxes)]
        elif kind < PARENT_RATE + PERSON_RATE:
            name, mailbox = persons[int(rand() * n_persons)]
            mailbox = f"{mailbox}{number}"
            domain = mail_domains[int(rand() * n_mail_domains)]
        else:
            company_number = int(rand() * n_companies)
            name, word = companies[company_number]
            domain = f"{word}{number}.example.com"
            mailbox = mailboxes[int(rand() * n_mailboxes)]
            root_ids += ulid
            root_companies.append(company_number)
            roots += 1

        chance = rand()
        if chance < NO_EMAIL_RATE:
            email = None
        elif chance < NO_EMAIL_RATE + CAPITALISED_EMAIL_RATE:
            email = f"{mailbox.capitalize()}@{domain}"
        else:
            email = f"{mailbox}@{domain}"

        chance = rand()
        if chance < NO_METADATA_RATE:
            metadata = NO_METADATA
        elif chance < NO_METADATA_RATE + ACCOUNT_MANAGER_RATE:
            metadata = managed_metadata[int(rand() * n_managed)]
        else:
            metadata = plain_metadata[int(rand() * n_plain)]

        chance = rand()
        status = (
            published if chance < PUBLISHED_BELOW else draft if chance < DRAFT_BELOW else archived
        )

        created_at = START + created_us * one_us
        chance = rand()
        if chance < NEVER_UPDATED_RATE:
            updated_at = created_at
        else:
            updated_at = created_at + int(rand() * UPDATE_SPAN_US) * one_us

        chance = rand()
        address_line2 = suites[int(chance * suite_scale)] if chance < SUITE_RATE else ""

        yield CustomerRow(
            number,
            customer_id,
            external_id,
            name,
            email,
            line1s[int(rand() * n_line1s)],
            address_line2,
            city,
            state,
            postal_code,
            country,
            parent_id,
            metadata,
            status,
            created_at,
            updated_at,
            derived_keys_for(name=name, email=email, external_id=external_id),
        )


# -- Writing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedResult:
    scope: Scope
    statuses: dict[str, int]
    with_parent: int
    seconds: float  # generating and writing, in one transaction
    analyze_seconds: float  # ANALYZE afterwards (PostgreSQL), 0 elsewhere

    @property
    def seeded(self) -> int:
        return sum(self.statuses.values())

    @property
    def rows_per_second(self) -> float:
        return self.seeded / self.seconds if self.seconds > 0 else 0.0


SEED_ACTOR = Actor.command("seed_customers")
# Rows are written this many at a time, each batch followed by its events (as the importer
# does): memory holds one batch's rows, whatever the count.
SEED_EVENT_BATCH_ROWS = 20_000


def write_with_events(
    *, rows: Iterable[CustomerRow], scope: Scope, report: Reporter, add_counts: bool = True
) -> Written:
    """``write_counted`` a batch at a time, each batch's ``customer.created`` events (by
    SEED_ACTOR) written after it in bulk, in the caller's transaction: COPY on PostgreSQL."""
    iterator = iter(rows)
    total = Written(statuses=Counter())
    while True:
        batch: list[CustomerRow] = []

        def collected(batch=batch) -> Iterator[CustomerRow]:
            for row in islice(iterator, SEED_EVENT_BATCH_ROWS):
                batch.append(row)
                yield row

        done_before = sum(total.statuses.values())
        written = write_counted(
            rows=collected(),
            scope=scope,
            report=lambda phase, done, whole, before=done_before: report(
                phase, before + done, whole
            ),
            add_counts=add_counts,
        )
        if batch:
            customer_created_events_record(
                customers=(customer_row_object(row, scope) for row in batch),
                scope=scope,
                actor=SEED_ACTOR,
            )
        total.add(written)
        if len(batch) < SEED_EVENT_BATCH_ROWS:
            return total


class SeedError(Exception):
    """Seeding was refused or failed; nothing was written."""


# on_progress(done, total)
SeedProgress = Callable[[int, int], None]


def seed_customers(
    *,
    tenant_id: str,
    environment_id: str,
    count: int,
    seed: int,
    on_progress: SeedProgress | None = None,
    analyze: bool = True,
    writers: int | None = None,
) -> SeedResult:
    """Write ``count`` seeded customers into the scope (created if missing), all or none.

    The rows are generated as the importer's writer consumes them (a COPY on PostgreSQL:
    the database indexes rows while Python generates the next ones, and memory stays flat),
    and their statuses go into the per-status counts in the same transaction. Seeding the
    same seed into the same scope twice is refused by the ids' primary key.

    ``writers``: on PostgreSQL, outside a transaction, the blocks of rows are shared among
    WRITERS connections, each with its own transaction (default: one per CPU core, as
    inserting into the indexes is the bottleneck); see ``write_in_parallel``. Inside a
    transaction (or on SQLite) one writer writes everything in the caller's transaction.
    """
    environment = environment_ensure(tenant_id=tenant_id, environment_id=environment_id)
    scope = environment.scope
    if writers is None:
        writers = os.cpu_count() or 1
    parallel = connection.vendor == "postgresql" and not connection.in_atomic_block
    blocks = seed_blocks(count)
    writers = max(1, min(writers, len(blocks))) if parallel else 1
    progress = SharedProgress(on_progress, total=count)

    started = time.perf_counter()
    try:
        if writers == 1:
            with transaction.atomic():
                rows = seed_customer_rows(scope=scope, count=count, seed=seed)
                written = write_with_events(rows=rows, scope=scope, report=progress.reporter(0))
        else:
            # Writer w writes every WRITERS-th block: a branch's parent is in its own block.
            sources = [
                functools.partial(
                    seed_blocks_rows, scope=scope, count=count, seed=seed, writer=w, writers=writers
                )
                for w in range(writers)
            ]
            written = write_in_parallel(
                scope=scope, sources=sources, progress=progress, write=write_with_events
            )
    except IntegrityError as error:
        raise SeedError(
            f"could not write the customers of {scope} (seed {seed}); were they seeded"
            f" already? Nothing was written. {error}"
        ) from None
    seconds = time.perf_counter() - started

    analyze_seconds = 0.0
    if analyze and count and connection.vendor == "postgresql":
        # A million new rows (and as many events, and their deliveries): give the planner
        # their statistics now, not at autovacuum's pace.
        analyze_started = time.perf_counter()
        tables = (Customer, CustomerEvent, WebhookDelivery)
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE "
                + ", ".join(connection.ops.quote_name(model._meta.db_table) for model in tables)
            )
        analyze_seconds = time.perf_counter() - analyze_started
    return SeedResult(
        scope=scope,
        statuses=dict(written.statuses),
        with_parent=written.with_parent,
        seconds=seconds,
        analyze_seconds=analyze_seconds,
    )


# -- As a CSV file -----------------------------------------------------------------------------


def seed_csv_cells(row: CustomerRow, *, scope: Scope) -> list[str]:
    """The row's cells under the export's header (the API's field names, scope included)."""
    values = row._asdict()
    values.update(tenant_id=scope.tenant_id, environment_id=scope.environment_id)
    cells = []
    for attribute in ROW_COLUMNS:
        value = values[attribute]
        if value is None:
            cells.append("")
        elif isinstance(value, datetime):
            cells.append(rfc3339(value))
        elif isinstance(value, dict):
            cells.append(json.dumps(value, ensure_ascii=False) if value else "")
        else:
            cells.append(value)
    return cells


def write_seed_csv(*, path: str | os.PathLike[str], scope: Scope, count: int, seed: int) -> int:
    """Write the rows ``seed_customers`` would insert as a CSV file that ``import_customers``
    reads (into the same scope); the database is not touched. Returns the number of rows."""
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as csv_file:
        writer = csv.writer(csv_file, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)  # what an export holds, so the file reads like one
        for row in seed_customer_rows(scope=scope, count=count, seed=seed):
            writer.writerow(seed_csv_cells(row, scope=scope))
            written += 1
    return written
