"""Local development: debug on, an insecure key of its own, the demo API key allowed."""

from crm.settings.base import *  # noqa: F403
from crm.settings.env import env_bool, env_str

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or "dev-only-insecure-key-never-use-in-production"
CRM_ALLOW_DEMO_KEY = True
# Local receivers (http://127.0.0.1:...) may be webhook endpoints.
WEBHOOKS_ALLOW_PRIVATE_URLS = env_bool("WEBHOOKS_ALLOW_PRIVATE_URLS", True)
# Serve static files straight from the apps, no collectstatic needed while developing.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
