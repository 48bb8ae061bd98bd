"""The framework floor: Django and DRF answering the product's list bodies from memory.

Served by the same gunicorn settings as the product (``gunicorn bench.framework.wsgi -c
gunicorn.conf.py``), it does what any Django + DRF API must do for a request and nothing
the product's own code does: Django's request handling and the middleware of a new project,
DRF's APIView (content negotiation, an API-key-like header check, the permission, the
Response and its renderer), no database. The bodies are the very bytes the product answered
for each query, captured by the benchmark just before (``BENCH_FRAMEWORK_BODIES``, a JSON
file mapping each query string to its body); the product's time over this one is what its
own code costs.
"""
