"""Deterministic, realistic demo customers for `seed_demo` (and anything else that needs them)."""

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from customers.ids import CUSTOMER_ID_PREFIX, five_bit_groups, ulid_bytes
from customers.models import Customer, CustomerStatus
from customers.scope import Scope

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
STATUS_WEIGHTS = [
    (CustomerStatus.PUBLISHED, 80),
    (CustomerStatus.DRAFT, 12),
    (CustomerStatus.ARCHIVED, 8),
]
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
SPREAD = timedelta(days=3 * 365)


def deterministic_customer_id(rng: random.Random, created_at: datetime) -> str:
    """A ULID-shaped id from the creation time and the seeded generator (stable across runs)."""
    milliseconds = int(created_at.timestamp() * 1000)
    randomness = five_bit_groups(rng.getrandbits(80))
    return CUSTOMER_ID_PREFIX + ulid_bytes(milliseconds, randomness).decode()


def demo_customers(*, scope: Scope, count: int, seed: int, id_tag: str) -> Iterator[Customer]:
    """``count`` unsaved customers, the same ones for the same arguments, about 10% children."""
    rng = random.Random(seed)
    created: list[Customer] = []
    for number in range(1, count + 1):
        company = (
            f"{rng.choice(COMPANY_FIRST)} {rng.choice(COMPANY_SECOND)} {rng.choice(COMPANY_SUFFIX)}"
        )
        domain = company.split()[0].lower().replace("é", "e") + f"{number}.example.com"
        city, state, postal_code, country = rng.choice(PLACES)
        created_at = EPOCH + SPREAD * rng.random()
        updated_at = created_at + timedelta(days=rng.randint(0, 90), seconds=rng.randint(0, 86399))
        status = rng.choices([s for s, _ in STATUS_WEIGHTS], [w for _, w in STATUS_WEIGHTS])[0]
        email = None if rng.random() < 0.05 else f"{rng.choice(MAILBOXES)}@{domain}"
        parent = None
        earlier_parents = [c for c in created if c.parent_id is None and c.created_at < created_at]
        if earlier_parents and rng.random() < 0.1:
            parent = rng.choice(earlier_parents)
        metadata = {"plan_tier": rng.choice(PLAN_TIERS), "region": rng.choice(REGIONS)}
        if rng.random() < 0.3:
            metadata["account_manager"] = rng.choice(PEOPLE)
        customer = Customer(
            id=deterministic_customer_id(rng, created_at),
            tenant_id=scope.tenant_id,
            environment_id=scope.environment_id,
            external_id=f"{id_tag}_{number:05d}",
            name=company if not parent else f"{company} ({city})",
            email=email,
            address_line1=f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
            address_line2=rng.choice(["", "", "", f"Suite {rng.randint(100, 900)}"]),
            address_city=city,
            address_state=state,
            address_postal_code=postal_code,
            address_country=country,
            parent_id=parent.id if parent else None,
            metadata=metadata,
            status=status,
            created_at=created_at,
            updated_at=updated_at,
        )
        customer.refresh_derived_keys()
        created.append(customer)
        yield customer
