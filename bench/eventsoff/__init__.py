"""The app with its per-change event writing turned off, for the benchmark only.

``gunicorn bench.eventsoff.wsgi -c gunicorn.conf.py`` serves this checkout's app exactly as
``crm.wsgi`` does, except that ``customers.services.customer_event_record`` (the event's
INSERT and its webhook deliveries, in the change's transaction) does nothing: the write
path "without events" that docs/benchmarks.md sets beside the real one.
"""
