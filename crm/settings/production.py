"""Production: refuses to start without a secret key; secure cookies; no demo key."""

from django.core.exceptions import ImproperlyConfigured

from crm.settings.base import *  # noqa: F403
from crm.settings.env import env_bool

if not SECRET_KEY:  # noqa: F405
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
DEBUG = False
CRM_ALLOW_DEMO_KEY = False
WEBHOOKS_ALLOW_PRIVATE_URLS = False  # never: endpoints must be public https:// URLs
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
