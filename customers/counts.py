"""The per-status customer counts of each scope, kept in step by every write.

Its own module (models only below it), so that the services and the bulk writer both use
it without importing each other.
"""

from collections.abc import Mapping

from django.db import connection

from customers.models import CustomerStatusCount
from customers.scope import Scope


def customer_counts_add(*, scope: Scope, deltas: Mapping[str, int]) -> None:
    """Add ``deltas`` (status -> change) to the scope's per-status counts.

    Call it inside the transaction of the write it accounts for. Rows are touched in status
    order, so two transactions moving customers between the same statuses (archive and
    restore) lock them in the same order and cannot deadlock.
    """
    table = CustomerStatusCount._meta.db_table
    sql = (
        # The table's name only; every value is a parameter.
        f"INSERT INTO {table} (tenant_id, environment_id, status, count) VALUES (%s, %s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (tenant_id, environment_id, status) "
        f"DO UPDATE SET count = {table}.count + excluded.count"
    )
    with connection.cursor() as cursor:
        for status in sorted(deltas):
            if deltas[status]:
                cursor.execute(sql, [scope.tenant_id, scope.environment_id, status, deltas[status]])
