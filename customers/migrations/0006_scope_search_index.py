"""The admin search's trigram index leads with the environment (the scope).

A plain trigram index on ``search_key`` finds every tenant's matches, and each one is then
read from the table only to be thrown away by the scope filter. With the environment inside
the GIN index (``btree_gin`` makes plain columns indexable there) the bitmap holds only the
scope's matches: fewer table reads for the page and the count. Environment ids are unique
across tenants, so the tenant need not be in the index too (measured: with it, building
the bitmap for a common word took twice as long).
"""

from django.db import migrations

OLD_INDEX = "customer_search_trgm"
NEW_INDEX = "customer_scope_search_trgm"


def create_scope_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {NEW_INDEX} ON customers_customer "
        "USING gin (environment_id, search_key gin_trgm_ops)"
    )
    schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_INDEX}")


def restore_plain_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {OLD_INDEX} ON customers_customer "
        "USING gin (search_key gin_trgm_ops)"
    )
    schema_editor.execute(f"DROP INDEX IF EXISTS {NEW_INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_drop_redundant_like_index"),
    ]

    operations = [
        migrations.RunPython(create_scope_search_index, restore_plain_search_index),
    ]
