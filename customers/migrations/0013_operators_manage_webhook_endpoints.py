"""The operators' group, where it exists, may now manage webhook endpoints in the admin pages
(as ``services.OPERATOR_PERMISSIONS`` says for new and updated staff users)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

OPERATORS_GROUP = "Customer operators"
CODENAMES = (
    "view_webhookendpoint",
    "add_webhookendpoint",
    "change_webhookendpoint",
    "delete_webhookendpoint",
)


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=OPERATORS_GROUP).first()
    if group is None:  # a new database: staff_user_upsert makes the group with them
        return
    # Permissions are created after migrations run; these may not exist yet.
    app_config = apps.get_app_config("customers")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    permissions = Permission.objects.filter(
        content_type__app_label="customers", codename__in=CODENAMES
    )
    group.permissions.add(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0012_webhooks"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
