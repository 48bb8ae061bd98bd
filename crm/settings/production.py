"""Production: refuses to start without a secret key; secure cookies; no demo key."""

from django.core.exceptions import ImproperlyConfigured

from crm.settings.base import *  # noqa: F403
from crm.settings.base import database_timeouts
from crm.settings.env import env_bool, env_str

if not SECRET_KEY:  # noqa: F405
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
DEBUG = False
CRM_ALLOW_DEMO_KEY = False
WEBHOOKS_ALLOW_PRIVATE_URLS = False  # never: endpoints must be public https:// URLs

# A database that is away costs a request seconds, then a 503 (customers/outage.py): 2 s to
# connect (DJANGO_DB_CONNECT_TIMEOUT), 5 s for a web request's statement
# (DJANGO_DB_STATEMENT_TIMEOUT, milliseconds; commands and exports have no limit: base.py).
database_timeouts(
    DATABASES["default"],  # noqa: F405
    connect_timeout=int(env_str("DJANGO_DB_CONNECT_TIMEOUT", "2")),
)
DB_REQUEST_STATEMENT_TIMEOUT_MS = int(env_str("DJANGO_DB_STATEMENT_TIMEOUT", "5000"))
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
