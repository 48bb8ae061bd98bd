"""`create_staff_user --username U --password P --tenant T [--tenant T2 ...]`."""

from django.core.management.base import BaseCommand, CommandError

from customers.services import ServiceError, staff_user_upsert


class Command(BaseCommand):
    help = (
        "Create or update a staff user whose tenant memberships become exactly the given"
        " tenants, with permission to view, add and change customers."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--tenant", action="append", required=True, dest="tenants")

    def handle(self, *args, username, password, tenants, **options):
        try:
            user = staff_user_upsert(username=username, password=password, tenant_ids=tenants)
        except ServiceError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Staff user {user.username} belongs to: {', '.join(tenants)}")
