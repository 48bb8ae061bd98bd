"""`create_api_key --tenant T --environment E [--name N]`: prints the raw key as the last line."""

from django.core.management.base import BaseCommand, CommandError

from customers.services import ServiceError, api_key_create, environment_ensure


class Command(BaseCommand):
    help = "Create an API key for one tenant and environment (both created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--environment", required=True)
        parser.add_argument("--name", default="")

    def handle(self, *args, tenant, environment, name, **options):
        try:
            scope_environment = environment_ensure(tenant_id=tenant, environment_id=environment)
            api_key, raw_key = api_key_create(environment=scope_environment, name=name)
        except ServiceError as error:
            raise CommandError(str(error)) from None
        self.stderr.write(
            f"Created API key {api_key.prefix}… for {tenant}/{environment}."
            " It is shown once; store it now."
        )
        self.stdout.write(raw_key)
