"""`revoke_api_key PREFIX`: the key stops working at once."""

from django.core.management.base import BaseCommand, CommandError

from customers.services import ServiceError, api_key_revoke


class Command(BaseCommand):
    help = "Revoke the API key with the given prefix (the first 11 characters of the key)."

    def add_arguments(self, parser):
        parser.add_argument("prefix")

    def handle(self, *args, prefix, **options):
        try:
            api_key = api_key_revoke(prefix=prefix)
        except ServiceError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Revoked API key {api_key.prefix}… at {api_key.revoked_at.isoformat()}")
