"""A realistic import file, as a new user's export from another system would be:

    python bench/importfile.py PATH --rows N --tenant T --environment E

Every field filled (an email, a second address line and a state for every customer, metadata
for every one: three keys for a third of them), timestamps in RFC 3339 with the offset of the
customer's city (``+02:00``, ``-05:00``...; microseconds kept), about 10% of the rows with a
parent (an earlier company of the file). The rows are ``customers.seeding``'s (deterministic:
the same arguments give the same file), so their ids are unique to the scope and seed; the
import scope is named so that the file imports there. Run with the app's environment
(DJANGO_SETTINGS_MODULE etc.): it imports the app's code but touches no database.
"""

import argparse
import csv
import os
import sys
from datetime import timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

# A fixed UTC offset per country (the file's timestamps carry it), and a state where the
# seeder's city has none.
OFFSETS = {
    "US": -5,
    "CA": -4,
    "GB": 1,
    "DE": 2,
    "FR": 2,
    "NL": 2,
    "SE": 2,
    "IN": 5.5,
    "AU": 10,
    "BR": -3,
    "JP": 9,
}
STATES = {
    "London": "Greater London",
    "Berlin": "Berlin",
    "Paris": "Île-de-France",
    "Amsterdam": "North Holland",
    "Stockholm": "Stockholm County",
    "Tokyo": "Tokyo",
}
FILLED_METADATA = {"plan_tier": "starter", "region": "us-east", "source": "migration"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--seed", type=int, default=22)
    arguments = parser.parse_args(argv)

    import django

    django.setup()
    from customers.exports import COLUMNS
    from customers.scope import Scope
    from customers.seeding import seed_csv_cells, seed_customer_rows

    scope = Scope(tenant_id=arguments.tenant, environment_id=arguments.environment)
    zones = {country: timezone(timedelta(hours=hours)) for country, hours in OFFSETS.items()}
    position = {name: index for index, name in enumerate(COLUMNS)}
    email, line2, state = position["email"], position["address_line2"], position["address_state"]
    metadata, created, updated = (
        position["metadata"],
        position["created_at"],
        position["updated_at"],
    )
    with_parent = 0
    with arguments.path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        rows = seed_customer_rows(scope=scope, count=arguments.rows, seed=arguments.seed)
        for row in rows:
            cells = seed_csv_cells(row, scope=scope)
            number = row.line
            if not cells[email]:
                cells[email] = f"accounts{number}@customer{number}.example.com"
            if not cells[line2]:
                cells[line2] = f"Floor {number % 40 + 1}"
            if not cells[state]:
                cells[state] = STATES.get(row.address_city, "Region")
            if not cells[metadata]:
                cells[metadata] = '{"plan_tier":"starter","region":"us-east","source":"migration"}'
            zone = zones[row.address_country]
            cells[created] = row.created_at.astimezone(zone).isoformat()
            cells[updated] = row.updated_at.astimezone(zone).isoformat()
            with_parent += row.parent_id is not None
            writer.writerow(cells)
    print(f"wrote {arguments.rows:,} rows ({with_parent:,} with a parent) to {arguments.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
