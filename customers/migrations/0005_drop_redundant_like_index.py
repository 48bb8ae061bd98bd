from django.db import migrations

# Django adds a varchar_pattern_ops copy of every indexed varchar column for LIKE 'x%'
# under non-C collations. customers_customer.id is COLLATE "C", so its primary key index
# already serves prefix matches: the copy only costs every insert another index write.
LIKE_INDEX = "customers_customer_id_ff9eaee8_like"


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE_INDEX}")


def restore_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX} ON customers_customer (id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("customers", "0004_status_counts")]

    operations = [migrations.RunPython(drop_like_index, restore_like_index)]
