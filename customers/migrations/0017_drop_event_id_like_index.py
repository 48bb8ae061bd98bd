"""Django adds a varchar_pattern_ops copy of the event id's primary key index for LIKE
'x%'; the id is COLLATE "C", whose primary key index serves prefix matches already, and no
query matches event ids by pattern: the copy only cost every event write another index
entry (found by the events' write benchmark). As 0005 did for the customer's id."""

from django.db import migrations

FIND_LIKE_INDEXES = """
    SELECT indexname FROM pg_indexes
    WHERE tablename = 'customers_customerevent' AND indexdef LIKE '%%(id varchar_pattern_ops)%%'
"""


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FIND_LIKE_INDEXES)
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS customers_customerevent_id_e7b0f1e2_like"
            " ON customers_customerevent (id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("customers", "0016_saved_views")]

    operations = [migrations.RunPython(drop_like_index, restore_like_index)]
