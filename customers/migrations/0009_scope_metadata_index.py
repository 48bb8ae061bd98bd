"""`metadata[KEY]=VALUE` filters are served by a GIN index that leads with the scope.

The filter is one containment (`metadata @> '{"KEY": "VALUE"}'`); `jsonb_path_ops` indexes
exactly that operator, compactly, and `btree_gin` (installed by 0006) puts the environment
(unique across tenants) in the same index, so other scopes' matches are never read.
"""

from django.db import migrations

INDEX = "customer_scope_metadata"


def create_metadata_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON customers_customer "
        "USING gin (environment_id, metadata jsonb_path_ops)"
    )


def drop_metadata_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("customers", "0008_customer_events")]

    operations = [migrations.RunPython(create_metadata_index, drop_metadata_index)]
