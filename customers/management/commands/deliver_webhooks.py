"""`deliver_webhooks [--once]`: send due webhook deliveries until SIGTERM (or, with `--once`,
until nothing is due). Run as many as you like, on as many machines: see customers.webhooks."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from customers.jobs import stop_on_signals
from customers.webhooks import deliver_due


class Command(BaseCommand):
    help = (
        "Deliver webhooks until SIGTERM or SIGINT (the attempts in hand are finished first); "
        "--once delivers what is due now and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="deliver what is due now, then exit (cron, tests)"
        )
        parser.add_argument(
            "--poll-seconds",
            type=float,
            default=1.0,
            help="how long to wait when nothing is due (default 1)",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            help="deliveries sent at a time (default: WEBHOOKS_CONCURRENCY, 8)",
        )

    def handle(self, *args, once: bool, poll_seconds: float, concurrency: int | None, **options):
        concurrency = settings.WEBHOOKS_CONCURRENCY if concurrency is None else concurrency
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1 (so must WEBHOOKS_CONCURRENCY)")
        with stop_on_signals() as stop:
            stats = deliver_due(
                once=once, stop=stop, poll_seconds=poll_seconds, concurrency=concurrency
            )
        self.stdout.write(
            f"{stats.attempts} attempts: {stats.succeeded} delivered, {stats.retried} to retry, "
            f"{stats.failed} failed"
        )
