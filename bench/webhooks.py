"""Webhook delivery throughput: one `deliver_webhooks` process sending one delivery at a
time, against the same process sending several at a time (``--concurrency``), and two
processes, to a receiver on 127.0.0.1 that answers at once and to one that takes 50 ms.

    .venv/bin/python bench/webhooks.py                        # prints the Markdown section
    .venv/bin/python bench/webhooks.py --append docs/benchmarks.md

Its own small database (``crm_bench_hooks``, made and migrated when missing): the drain's
cost does not depend on the size of the customer table. Each drain seeds a backlog of
customers in a scratch scope with one endpoint subscribed (their events and deliveries
written in bulk by ``seed_customers``), starts the workers, and times them from their start
to the last arrival at the receiver (Django's start-up included, as a deployment pays it).
The goal (issue "Events and webhooks"): at least 200 deliveries a second for one worker to a
receiver that answers at once.
"""

import argparse
import secrets
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/webhooks.py`: the package from the checkout
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

from bench.common import BenchError, write_section
from bench.data import django_environment, ensure_database, manage
from bench.eventlog import Drain, Receiver, drain_backlog, endpoint_to, with_hooks_settings
from bench.measure import remove_write_scopes
from bench.system import load_average, machine

DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/crm_bench_hooks"
SECTION = "## Webhook delivery, one at a time and several at a time"
GOAL_PER_SECOND = 200.0  # one worker, a receiver that answers at once
DEFAULT_CONCURRENCY = 8  # WEBHOOKS_CONCURRENCY's default


def plan(*, backlog: int, slow_backlog: int) -> list[tuple[float, int, int, int]]:
    """(receiver delay in seconds, backlog, workers, concurrency) of each drain."""
    return [
        (0.0, backlog, 1, 1),
        (0.0, backlog, 1, DEFAULT_CONCURRENCY),
        (0.0, backlog, 2, DEFAULT_CONCURRENCY),
        (0.05, slow_backlog, 1, 1),
        (0.05, slow_backlog, 1, DEFAULT_CONCURRENCY),
        (0.05, slow_backlog, 2, DEFAULT_CONCURRENCY),
    ]


def report(
    results: list[tuple[float, Drain]], *, loads: list[str], command: str, rounds: int
) -> str:
    lines = [
        SECTION,
        "",
        f"*{machine()}. Command: `{command}`. Load averages (1, 5, 15 min) before and after"
        f" each round: {'; '.join(loads)}.*",
        "",
        "`manage.py deliver_webhooks` with the production settings but for private URLs"
        " allowed (bench/hooks_settings.py), draining a backlog of deliveries (one endpoint,"
        " `seed_customers` writing the events and deliveries in bulk) to a threaded"
        " `http.server` on 127.0.0.1, timed from the workers' start (Django's start-up"
        " included) to the last arrival. Each configuration ran"
        f" {rounds} time(s), taking turns with the others; the table gives the median"
        " round and the range.",
        "",
        "| receiver answers | workers x concurrency | deliveries | deliveries/s (median) | range |",
        "|---|---|---:|---:|---|",
    ]
    keys = []
    for delay, drained in results:
        key = (delay, drained.workers, drained.concurrency)
        if key not in keys:
            keys.append(key)
    medians = {}
    for key in keys:
        rates = sorted(
            d.per_second for delay, d in results if (delay, d.workers, d.concurrency) == key
        )
        median = rates[len(rates) // 2]
        medians[key] = median
        delay, workers, concurrency = key
        answer = "at once" if not delay else f"after {delay * 1000:.0f} ms"
        count = next(d.deliveries for dl, d in results if (dl, d.workers, d.concurrency) == key)
        lines.append(
            f"| {answer} | {workers} x {concurrency} | {count:,} | **{median:,.0f}** |"
            f" {rates[0]:,.0f}-{rates[-1]:,.0f} |"
        )
    one = medians.get((0.0, 1, DEFAULT_CONCURRENCY))
    single = medians.get((0.0, 1, 1))
    lines += [""]
    if one is not None:
        met = "met" if one >= GOAL_PER_SECOND else "**not met**"
        lines.append(
            f"Goal: at least {GOAL_PER_SECOND:.0f} deliveries a second for one worker (its"
            f" default concurrency, {DEFAULT_CONCURRENCY}) to a receiver that answers at once:"
            f" {one:,.0f}/s, {met}" + (f" (one at a time: {single:,.0f}/s)." if single else ".")
        )
    slow_one, slow_many = medians.get((0.05, 1, 1)), medians.get((0.05, 1, DEFAULT_CONCURRENCY))
    if slow_one and slow_many:
        lines.append(
            f"To a receiver that takes 50 ms, one at a time is bound by the receiver"
            f" ({slow_one:,.0f}/s, at most 20); {DEFAULT_CONCURRENCY} at a time:"
            f" {slow_many:,.0f}/s ({slow_many / slow_one:.1f}x)."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--backlog", type=int, default=10_000, help="deliveries per drain")
    parser.add_argument(
        "--slow-backlog", type=int, default=1_000, help="deliveries per drain, 50 ms receiver"
    )
    parser.add_argument("--rounds", type=int, default=3, help="drains of each configuration")
    parser.add_argument("--append", type=Path, help="write the section into this Markdown page")
    arguments = parser.parse_args()

    ensure_database(arguments.database_url, reset=False)
    environment = django_environment(
        database_url=arguments.database_url, secret_key=secrets.token_urlsafe(40)
    )
    manage(environment, "migrate", "--no-input", capture=True)
    hooks_environment = with_hooks_settings(environment)
    results: list[tuple[float, Drain]] = []
    loads = []
    seed = 100
    remove_write_scopes(arguments.database_url)
    try:
        for round_number in range(arguments.rounds):
            before = load_average()
            for delay, backlog, workers, concurrency in plan(
                backlog=arguments.backlog, slow_backlog=arguments.slow_backlog
            ):
                with Receiver(delay_seconds=delay) as receiver:
                    remove_write_scopes(arguments.database_url, vacuum=False)
                    endpoint_to(hooks_environment, receiver)
                    seed += 1
                    print(f"round {round_number + 1}, receiver delay {delay * 1000:.0f} ms")
                    results.append(
                        (
                            delay,
                            drain_backlog(
                                database_url=arguments.database_url,
                                environment=environment,
                                receiver=receiver,
                                backlog=backlog,
                                seed=seed,
                                workers=workers,
                                concurrency=concurrency,
                            ),
                        )
                    )
            loads.append(f"{before} → {load_average()}")
    finally:
        remove_write_scopes(arguments.database_url)
    command = "bench/webhooks.py" + (f" --append {arguments.append}" if arguments.append else "")
    section = report(
        results, loads=loads, command=f".venv/bin/python {command}", rounds=arguments.rounds
    )
    print(section)
    if arguments.append:
        write_section(arguments.append, section, heading=SECTION)


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        sys.exit(f"bench/webhooks.py: {error}")
