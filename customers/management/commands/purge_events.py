"""`purge_events --older-than-days N`: delete events older than N days (N at least 30)."""

from django.core.management.base import BaseCommand, CommandError

from customers.services import events_purge

MINIMUM_DAYS = 30


class Command(BaseCommand):
    help = "Delete events older than N days; events are kept at least 30 days."

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, required=True, dest="days")

    def handle(self, *args, days: int, **options):
        if days < MINIMUM_DAYS:
            raise CommandError(f"events are kept at least {MINIMUM_DAYS} days, not {days}")
        deleted = events_purge(older_than_days=days)
        self.stdout.write(f"Deleted {deleted} events older than {days} days.")
