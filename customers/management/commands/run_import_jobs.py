"""`run_import_jobs [--once]`: run the admin's dry runs and imports until SIGTERM (or, with
`--once`, until none is due). Run as many as you like, on as many machines: see
customers.import_jobs."""

from django.core.management.base import BaseCommand

from customers.import_jobs import run_import_jobs
from customers.jobs import stop_on_signals


class Command(BaseCommand):
    help = (
        "Run the dry runs and imports asked for in the admin, until SIGTERM or SIGINT (the "
        "one in hand is rolled back and given back); --once runs what is due now and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="run what is due now, then exit (cron, tests)"
        )
        parser.add_argument(
            "--poll-seconds",
            type=float,
            default=1.0,
            help="how long to wait when nothing is due (default 1)",
        )

    def handle(self, *args, once: bool, poll_seconds: float, **options):
        with stop_on_signals() as stop:
            done = run_import_jobs(once=once, stop=stop, poll_seconds=poll_seconds)
        self.stdout.write(f"{done} import jobs run")
