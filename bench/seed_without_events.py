"""`manage.py seed_customers ARGS` of CHECKOUT with the seeding's event writing turned off:

    python bench/seed_without_events.py CHECKOUT --count N --tenant T --environment E

The same command, the same code, but ``customers.seeding.customer_created_events_record``
(each batch's ``customer.created`` events, COPYed after its rows) replaced by a function that
writes nothing: the seeding "without events" that docs/benchmarks.md sets beside the real
one. Only the benchmark runs this.
"""

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    checkout = Path(argv[0]).resolve()
    sys.path.insert(0, str(checkout))
    os.chdir(checkout)
    import django

    django.setup()
    from django.core.management import call_command

    from customers import seeding

    def no_events(*, customers, scope, actor) -> int:
        return sum(1 for _ in customers)  # consumed, as the real one does, but not written

    seeding.customer_created_events_record = no_events
    call_command("seed_customers", *argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
