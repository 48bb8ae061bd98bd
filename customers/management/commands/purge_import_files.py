"""`purge_import_files [--older-than-days N]`: discard the uploaded files that passed their
dry run but were not imported within N days (default 7); see customers.import_jobs."""

from django.core.management.base import BaseCommand, CommandError

from customers.import_jobs import import_files_purge

DEFAULT_DAYS = 7


class Command(BaseCommand):
    help = (
        "Discard the files of admin uploads that passed their dry run but were not imported "
        "within N days (default 7): their jobs are marked failed, saying so."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, default=DEFAULT_DAYS, dest="days")

    def handle(self, *args, days: int, **options):
        if days < 1:
            raise CommandError(f"--older-than-days must be at least 1, not {days}")
        purged = import_files_purge(older_than_days=days)
        self.stdout.write(f"Discarded the files of {purged} uploads not imported in {days} days.")
