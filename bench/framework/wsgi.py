"""WSGI entry point of the framework floor (gunicorn bench.framework.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.framework.settings")

application = get_wsgi_application()
