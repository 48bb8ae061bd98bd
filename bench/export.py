"""The API's export over HTTP beside PostgreSQL's own COPY of the same rows (issue "Find and
sync customers": the export at least 50% of COPY), and optionally beside another checkout's.

    .venv/bin/python bench/export.py                                  # prints the section
    .venv/bin/python bench/export.py --compare /tmp/crm-before --append docs/benchmarks.md

It uses bench/run.py's database (``crm_bench``: 600,000 customers in the benchmark's scope;
run bench/run.py first if it is missing), serves the app as bench/run.py does (gunicorn,
production settings), and streams `GET /v1/customers/export` (CSV, then JSON Lines) of the
whole scope to the last byte, sampling the serving worker's memory; the floor is
``COPY (SELECT <the 17 columns> ... ORDER BY created_at DESC, id DESC) TO STDOUT (FORMAT
csv)`` of the same rows read by psycopg. Each round measures every export once, taking
turns, then the floor; the table gives each one's median round.
"""

import argparse
import contextlib
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # `python bench/export.py`: the package from the checkout
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

from bench.common import (
    BENCH_ENVIRONMENT,
    BENCH_TENANT,
    DEFAULT_DATABASE_URL,
    BenchError,
    write_section,
)
from bench.data import create_credentials, django_environment
from bench.measure import Export, copy_export_floor, measure_export
from bench.server import Server
from bench.system import checkout_description, load_average, machine

SECTION = "## The API's export beside COPY"
GOAL = 0.50  # of the COPY floor's rows/s
STAFF_USERNAME = "bench_export"
FORMATS = ("csv", "jsonl")


def report(
    exports: dict[tuple[str, str], list[Export]],
    floors: list[float],
    *,
    loads: list[str],
    command: str,
    checkouts: dict[str, str],
) -> str:
    floor = statistics.median(floors)
    rows = next(iter(exports.values()))[0].rows
    lines = [
        SECTION,
        "",
        f"*{machine()}. Command: `{command}`. Load averages (1, 5, 15 min) before and after"
        f" each round: {'; '.join(loads)}.*",
        "",
        "`GET /v1/customers/export` of "
        f"`{BENCH_TENANT}/{BENCH_ENVIRONMENT}` ({rows:,} customers), streamed over HTTP from"
        " gunicorn (production settings) and read to the last byte, beside PostgreSQL's own"
        " `COPY (SELECT <the 17 columns> ... ORDER BY created_at DESC, id DESC) TO STDOUT"
        f" (FORMAT csv)` of the same rows read by psycopg: **{floor:,.0f} rows/s** (median"
        f" of {len(floors)}). Servers: "
        + "; ".join(f"*{label}*: {description}" for label, description in checkouts.items())
        + ".",
        "",
        "| export | server | MB | seconds (median) | rows/s | ÷ COPY | goal ≥ 50% |"
        " worker RSS before → peak |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for (label, fmt), runs in exports.items():
        seconds = statistics.median(run.seconds for run in runs)
        rate = rows / seconds
        peak = max(run.peak_rss_mib for run in runs)
        baseline = min(run.baseline_rss_mib for run in runs)
        met = "yes" if rate / floor >= GOAL else "**no**"
        lines.append(
            f"| {fmt} | {label} | {runs[0].megabytes:,.0f} | {seconds:.2f} | {rate:,.0f} |"
            f" {rate / floor:.0%} | {met} | {baseline:.0f} → {peak:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compare", type=Path, metavar="CHECKOUT", help="also serve another checkout's app"
    )
    parser.add_argument("--append", type=Path, help="write the section into this Markdown page")
    arguments = parser.parse_args()

    environment = django_environment(
        database_url=arguments.database_url, secret_key=secrets.token_urlsafe(40)
    )
    credentials = create_credentials(environment, staff_username=STAFF_USERNAME)
    headers = {"x-api-key": credentials.api_key}
    checkouts = {"app": Path(__file__).resolve().parent.parent}
    if arguments.compare:
        checkouts["before"] = arguments.compare.resolve()
    exports: dict[tuple[str, str], list[Export]] = {
        (label, fmt): [] for label in checkouts for fmt in FORMATS
    }
    floors: list[float] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        servers = {}
        for label, cwd in checkouts.items():
            server = Server(
                label=label,
                environment=environment,
                log_path=Path(directory) / f"{label}.log",
                cwd=cwd,
            )
            stack.callback(server.stop)
            server.start()
            servers[label] = server
        for round_number in range(arguments.rounds):
            before = load_average()
            for (label, fmt), runs in exports.items():
                path = f"/v1/customers/export?format={fmt}"
                export = measure_export(server=servers[label], headers=headers, path=path)
                print(
                    f"round {round_number + 1}: {fmt} ({label}): {export.rows:,} rows in"
                    f" {export.seconds:.2f}s"
                )
                runs.append(export)
            floor = copy_export_floor(
                arguments.database_url, tenant=BENCH_TENANT, environment=BENCH_ENVIRONMENT
            )
            floors.append(floor.rows_per_second)
            print(f"round {round_number + 1}: COPY floor {floor.rows_per_second:,.0f} rows/s")
            loads.append(f"{before} → {load_average()}")
    counts = {runs[0].rows for runs in exports.values()}
    if len(counts) != 1:
        raise BenchError(f"the exports disagree on the number of rows: {sorted(counts)}")
    command = "bench/export.py" + "".join(
        f" --{name} {value}"
        for name, value in (("compare", arguments.compare), ("append", arguments.append))
        if value
    )
    section = report(
        exports,
        floors,
        loads=loads,
        command=f".venv/bin/python {command}",
        checkouts={label: checkout_description(path) for label, path in checkouts.items()},
    )
    print(section)
    if arguments.append:
        write_section(arguments.append, section, heading=SECTION)


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        sys.exit(f"bench/export.py: {error}")
