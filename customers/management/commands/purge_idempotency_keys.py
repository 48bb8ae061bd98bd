"""`purge_idempotency_keys`: delete Idempotency-Key records older than 24 hours (run from cron)."""

from django.core.management.base import BaseCommand

from customers.api.idempotency import purge_expired_idempotency_records


class Command(BaseCommand):
    help = "Delete expired Idempotency-Key records (older than 24 hours)."

    def handle(self, *args, **options):
        deleted = purge_expired_idempotency_records()
        self.stdout.write(f"Deleted {deleted} expired idempotency records")
