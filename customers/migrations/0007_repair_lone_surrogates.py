"""Repairs text that cannot be written as UTF-8 (lone surrogates), stored before it was refused.

Only SQLite could store it: its JSON columns kept `"\\udfff"` as an escape, which reads back
as a lone surrogate and broke every page showing the row. PostgreSQL never accepted such
text, so there is nothing to do there. Each lone surrogate becomes U+FFFD.
"""

from django.db import migrations

from customers.text import is_utf8_encodable, repaired_text


def repaired(value):
    if isinstance(value, str):
        return repaired_text(value)
    if isinstance(value, dict):
        return {repaired(key): repaired(item) for key, item in value.items()}
    if isinstance(value, list):
        return [repaired(item) for item in value]
    return value


def holds_bad_text(value) -> bool:
    if isinstance(value, str):
        return not is_utf8_encodable(value)
    if isinstance(value, dict):
        return any(holds_bad_text(key) or holds_bad_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_bad_text(item) for item in value)
    return False


def repair(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for model_name, field in (("Customer", "metadata"), ("IdempotencyRecord", "response_body")):
        model = apps.get_model("customers", model_name)
        # A lone surrogate is stored as a \uDXXX escape: only such rows need a look.
        candidates = model.objects.filter(**{f"{field}__icontains": "\\ud"}).only("pk", field)
        for row in candidates.iterator():
            value = getattr(row, field)
            if holds_bad_text(value):
                setattr(row, field, repaired(value))
                row.save(update_fields=[field])


class Migration(migrations.Migration):
    dependencies = [("customers", "0006_scope_search_index")]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]
