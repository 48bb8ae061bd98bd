"""Side by side, at a million customers: the search body against the list it stands for, the
list with and without the rate limiter, and the admin's dashboard.

    .venv/bin/python bench/sidebyside.py                        # prints the Markdown section
    .venv/bin/python bench/sidebyside.py --append docs/benchmarks.md

It uses bench/run.py's database (``crm_bench``: 600,000 customers in the benchmark's scope;
run bench/run.py first if it is missing) and gunicorn with the production settings, as
bench/run.py serves it. Requests take turns, one of each kind per round over keep-alive
connections, so a slow phase of the machine (shared with other work) falls on every kind
alike; what counts is each pair's ratio.

- **Search against the list** (issue "Drop-in for Flexprice's own SDK", goal: within 10%):
  ``POST /v1/customers/search`` with the body equivalent of the default list, of
  ``email=``, and of a ``contains`` condition on the email, beside ``GET /v1/customers`` with
  the default list, ``email=`` and ``q=`` of the same fragment (both served by the scope's
  trigram index; the condition also checks the email itself).
- **Rate limiting** (issue "Hardening", goal: at most 0.5 ms at p50): the default list from
  three servers: no limiter (``bench.settings_without_ratelimit``), the limiter counting in
  each process's memory, and the limiter counting in Redis (``REDIS_URL``, production).
- **A saved view** (issue "Operator workspace", goal: no measurable difference): the list
  with ``view=<slug>`` of a shared view beside the same parameters given explicitly.
- **Writes with their events** (issue "Events and webhooks", goal: at most 20% slower):
  create and update over HTTP, beside the same code with its event writing a no-op.
- **The dashboard** (issue "Operator workspace", goal: at most 50 ms at p50): the admin index
  of a staff user of the benchmark's tenant, for its 600,000-customer environment.
"""

import argparse
import contextlib
import json
import re
import secrets
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # `python bench/sidebyside.py`: the package from the checkout
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

import psycopg

from bench.common import (
    BENCH_ENVIRONMENT,
    BENCH_TENANT,
    DEFAULT_DATABASE_URL,
    BenchError,
    write_section,
)
from bench.data import create_credentials, django_environment, manage
from bench.eventlog import (
    EVENTS_OFF,
    EVENTS_ON,
    HTTP_ENVIRONMENT,
    measure_http_writes,
    percentile,
    scratch_api_key,
)
from bench.measure import remove_write_scopes
from bench.server import Client, Server, admin_login
from bench.system import load_average, machine

REDIS_URL = "redis://127.0.0.1:6379/0"
STAFF_USERNAME = "bench_sidebyside"
SECTION = "## Search, rate limiting, saved views and the dashboard, side by side"
SAVED_VIEW_SLUG = "bench-drafts-by-name"
SAVED_VIEW_PARAMS = {"status": ["draft"], "sort": ["name"], "order": ["asc"]}
SEARCH_GOAL = 1.10
RATE_LIMIT_GOAL_MS = 0.5
DASHBOARD_GOAL_MS = 50.0
EVENTS_GOAL = 1.20  # a write with its event at most 20% slower than without


@dataclass
class Request:
    label: str
    server: str  # which server answers it
    method: str
    path: str
    body: bytes | None = None


def probe_values(database_url: str) -> tuple[str, str]:
    """An email of the scope, and a fragment of another one that few customers' emails hold
    (`yoyodyne2001`: a name and the number the seeder gives it)."""
    with psycopg.connect(database_url) as connection:
        email, other = (
            row[0]
            for row in connection.execute(
                "SELECT email FROM customers_customer WHERE tenant_id = %s"
                " AND environment_id = %s AND email LIKE '%%@%%' ORDER BY id LIMIT 2 OFFSET 1000",
                (BENCH_TENANT, BENCH_ENVIRONMENT),
            )
        )
        # A shared view of the benchmark's tenant (what the admin's "Save view" writes).
        connection.execute(
            "INSERT INTO customers_savedview (tenant_id, owner_id, name, slug, shared, params,"
            " columns, created_at, updated_at) VALUES (%s, NULL, %s, %s, true, %s, '[]', now(),"
            " now()) ON CONFLICT (tenant_id, slug) DO UPDATE SET params = EXCLUDED.params",
            (BENCH_TENANT, "Drafts by name", SAVED_VIEW_SLUG, json.dumps(SAVED_VIEW_PARAMS)),
        )
    fragments = re.findall(r"[a-z]+\d+", other.lower())
    if not fragments:
        raise BenchError(f"no fragment with a number in {other!r}")
    return email, fragments[0]


def requests_to_time(email: str, word: str) -> list[Request]:
    def search(body: dict) -> bytes:
        return json.dumps(body).encode()

    contains = {
        "filters": [
            {
                "field": "name",
                "operator": "contains",
                "data_type": "string",
                "value": {"string": word},
            }
        ]
    }
    return [
        Request("GET default list", "redis", "GET", "/v1/customers"),
        Request("POST search {}", "redis", "POST", "/v1/customers/search", search({})),
        Request("GET email=", "redis", "GET", f"/v1/customers?email={email}"),
        Request(
            "POST search email", "redis", "POST", "/v1/customers/search", search({"email": email})
        ),
        Request("GET q=fragment", "redis", "GET", f"/v1/customers?q={word}"),
        Request(
            "POST search email contains", "redis", "POST", "/v1/customers/search", search(contains)
        ),
        Request("GET saved view", "redis", "GET", f"/v1/customers?view={SAVED_VIEW_SLUG}"),
        Request(
            "GET the view's parameters",
            "redis",
            "GET",
            "/v1/customers?status=draft&sort=name&order=asc",
        ),
        Request("list, no limiter", "none", "GET", "/v1/customers"),
        Request("list, limiter in memory", "memory", "GET", "/v1/customers"),
        Request("dashboard (admin index)", "redis-admin", "GET", "/admin/"),
    ]


def measure(clients: dict[str, Client], requests: list[Request], *, rounds: int, warmup: int):
    samples: dict[str, list[float]] = {request.label: [] for request in requests}
    for number in range(warmup + rounds):
        for request in requests:
            status, body, seconds = clients[request.server].send(
                request.method, request.path, request.body
            )
            if status != 200:
                raise BenchError(f"{request.label}: HTTP {status}: {body[:300]!r}")
            if number >= warmup:
                samples[request.label].append(seconds * 1000)
    return samples


def report(
    samples, *, rounds: int, load_start: str, load_end: str, command: str, writes=None
) -> str:
    def p50(label: str) -> float:
        return statistics.median(samples[label])

    lines = [
        SECTION,
        "",
        f"Machine: {machine()}. Load average at the start {load_start}, at the end {load_end}"
        " (the machine is shared with other work: the pairs' ratios are what count).",
        f"Command: `{command}`; {rounds} rounds, each request once a round, taking turns.",
        "",
        "| request | p50 ms | p95 ms |",
        "|---|---:|---:|",
    ]
    for label, values in samples.items():
        lines.append(f"| {label} | {p50(label):.2f} | {percentile(values, 0.95):.2f} |")
    lines += ["", "| pair | ratio or difference at p50 | goal | met |", "|---|---:|---|---|"]
    for get, post in (
        ("GET default list", "POST search {}"),
        ("GET email=", "POST search email"),
        ("GET q=fragment", "POST search email contains"),
    ):
        ratio = p50(post) / p50(get)
        lines.append(
            f"| {post} / {get} | {ratio:.2f}x | within {SEARCH_GOAL:.2f}x |"
            f" {'yes' if ratio <= SEARCH_GOAL else 'no'} |"
        )
    for label in ("list, limiter in memory", "GET default list"):
        delta = p50(label) - p50("list, no limiter")
        name = "limiter in Redis" if label == "GET default list" else "limiter in memory"
        lines.append(
            f"| {name} - no limiter | {delta:+.2f} ms | at most +{RATE_LIMIT_GOAL_MS} ms |"
            f" {'yes' if delta <= RATE_LIMIT_GOAL_MS else 'no'} |"
        )
    view_ratio = p50("GET saved view") / p50("GET the view's parameters")
    view_met = "yes" if view_ratio <= SEARCH_GOAL else "no"
    lines.append(
        f"| GET saved view / GET the view's parameters | {view_ratio:.2f}x | no measurable"
        f" difference | {view_met} (within {SEARCH_GOAL:.2f}x) |"
    )
    dashboard = p50("dashboard (admin index)")
    lines.append(
        f"| dashboard p50 | {dashboard:.1f} ms | at most {DASHBOARD_GOAL_MS:.0f} ms |"
        f" {'yes' if dashboard <= DASHBOARD_GOAL_MS else 'no'} |"
    )
    if writes is not None:
        for kind in ("create", "update"):
            ratio = writes.p50(kind, EVENTS_ON) / writes.p50(kind, EVENTS_OFF)
            lines.append(
                f"| {kind} with its event / without ({writes.p50(kind, EVENTS_ON):.2f} /"
                f" {writes.p50(kind, EVENTS_OFF):.2f} ms) | {ratio:.2f}x |"
                f" at most {EVENTS_GOAL:.2f}x | {'yes' if ratio <= EVENTS_GOAL else 'no'} |"
            )
    lines += [
        "",
        "The writes: the same code with its event writing a no-op (bench/eventsoff), served"
        " beside it, taking turns (bench/eventlog.py's create-then-update rounds); with the"
        " event, on PostgreSQL one statement writes it and its webhook deliveries.",
        "",
        "The email `contains` condition and `q=` of the same fragment (a name and the number"
        " the seeder gave it, as in `yoyodyne2001`) both narrow by the scope's trigram index;"
        " the condition then checks the email itself, `q` the name, email and external id"
        " together. The dashboard's figures: the"
        " per-status counts, the created and archived customers of the last 7 and 30 days"
        " (indexed), the latest events, failing webhook endpoints and recent imports.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--append", type=Path, help="write the section into this Markdown page")
    parser.add_argument(
        "--writes", type=int, default=200, help="creates (and updates) timed each way; 0: none"
    )
    arguments = parser.parse_args()

    base = django_environment(
        database_url=arguments.database_url, secret_key=secrets.token_urlsafe(40)
    )
    credentials = create_credentials(base, staff_username=STAFF_USERNAME)
    email, word = probe_values(arguments.database_url)
    variants = {
        "redis": {**base, "REDIS_URL": REDIS_URL, "API_RATE_LIMIT": "1000000/s"},
        "eventsoff": {**base, "REDIS_URL": REDIS_URL, "API_RATE_LIMIT": "1000000/s"},
        "memory": {**base, "API_RATE_LIMIT": "1000000/s"},
        "none": {**base, "DJANGO_SETTINGS_MODULE": "bench.settings_without_ratelimit"},
    }
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        servers = {}
        for name, environment in variants.items():
            server = Server(
                label=name,
                environment=environment,
                log_path=Path(directory) / f"{name}.log",
                app="bench.eventsoff.wsgi" if name == "eventsoff" else "crm.wsgi",
            )
            stack.callback(server.stop)
            server.start()
            servers[name] = server
        api_headers = {"x-api-key": credentials.api_key}
        clients = {name: Client(server.port, api_headers) for name, server in servers.items()}
        cookie = admin_login(
            servers["redis"].port, username=STAFF_USERNAME, password=credentials.staff_password
        )
        clients["redis-admin"] = Client(servers["redis"].port, {"Cookie": cookie})
        load_start = load_average()
        samples = measure(
            clients,
            requests_to_time(email, word),
            rounds=arguments.rounds,
            warmup=arguments.warmup,
        )
        writes = None
        if arguments.writes:
            remove_write_scopes(arguments.database_url)
            stack.callback(remove_write_scopes, arguments.database_url)
            writes_key = scratch_api_key(base, HTTP_ENVIRONMENT)
            stack.callback(manage, base, "revoke_api_key", writes_key[:11], capture=True)
            writes = measure_http_writes(
                servers={EVENTS_ON: servers["redis"], EVENTS_OFF: servers["eventsoff"]},
                api_key=writes_key,
                samples=arguments.writes,
            )
        load_end = load_average()
    command = "bench/sidebyside.py" + (f" --append {arguments.append}" if arguments.append else "")
    section = report(
        samples,
        rounds=arguments.rounds,
        load_start=load_start,
        load_end=load_end,
        command=f".venv/bin/python {command}",
        writes=writes,
    )
    print(section)
    if arguments.append:
        write_section(arguments.append, section, heading=SECTION)


if __name__ == "__main__":
    main()
