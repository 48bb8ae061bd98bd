"""gunicorn settings for production (`gunicorn crm.wsgi` reads this file from the working dir).

Every value can be overridden with the usual GUNICORN_CMD_ARGS or the variables below.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# Threads let one worker serve several requests while others wait on the database.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# A list filter may carry 1000 customer ids: about 32 KB of URL, far above gunicorn's default
# 4094-byte request line. 0 lifts gunicorn's own cap (its largest finite value is 8190); put a
# proxy in front with a generous, finite limit (e.g. nginx large_client_header_buffers 4 64k).
limit_request_line = 0
# One JSON object a line, as the app's own log (customers/logging.py): the access log on
# stdout (GUNICORN_ACCESS_LOG: a file instead, or empty for none), each request's line with
# its method, path, status, duration and X-Request-ID; gunicorn's own messages on stderr.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
logger_class = "customers.logging.GunicornLogger"
