"""What every part of the benchmark shares: paths, names of the data set, the error type."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # customers.shape below, whoever imports this module
    sys.path.insert(0, str(ROOT))

from customers.shape import FIELD_NAMES  # noqa: E402 (imports nothing of the project)

PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
LOOPBACK = "127.0.0.1"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/crm_bench"
QUICK_DATABASE_URL = "postgres://root@127.0.0.1:5432/crm_bench_quick"

BENCH_TENANT = "tenant_bench"
BENCH_ENVIRONMENT = "env_bench_production"
STAFF_USERNAME = "bench_operator"
CUSTOMER_TABLE = "customers_customer"
COUNTS_TABLE = "customers_customerstatuscount"
EVENTS_TABLE = "customers_customerevent"  # absent from checkouts older than the event log

# The contract's 17 fields, in its order: what a lean implementation of the list reads. The
# table's columns carry the API's names (the parent's is `parent_customer_id` there too);
# data.check_contract_columns verifies that against the database before anything is timed.
CONTRACT_COLUMNS = FIELD_NAMES


def write_section(path: Path, section: str, *, heading: str) -> None:
    """Write ``section`` into the Markdown page at ``path``: in place of the section under
    ``heading`` (up to the next `## ` heading), or at the end (after "Findings", which
    bench/run.py keeps with everything below it when it rewrites the page)."""
    page = path.read_text() if path.exists() else ""
    start = page.find(heading)
    if start < 0:
        page = page.rstrip() + "\n\n" + section
    else:
        end = page.find("\n## ", start + len(heading))
        page = page[:start] + section + ("" if end < 0 else page[end + 1 :])
    path.write_text(page)


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""
