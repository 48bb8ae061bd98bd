"""Helpers shared by several test modules (threads released together, count checks)."""

import threading

from django.db import connection
from django.db.models import Count

from customers.models import Customer, CustomerStatusCount


def run_together(count: int, work) -> list:
    """Run ``work(index)`` in ``count`` threads released at once; return their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def assert_counts_match_the_customers() -> None:
    actual = {
        (row["tenant_id"], row["environment_id"], row["status"]): row["total"]
        for row in Customer.objects.values("tenant_id", "environment_id", "status")
        .order_by()
        .annotate(total=Count("id"))
    }
    kept = {
        (row.tenant_id, row.environment_id, row.status): row.count
        for row in CustomerStatusCount.objects.all()
        if row.count
    }
    assert kept == actual
    assert not CustomerStatusCount.objects.filter(count__lt=0).exists()
