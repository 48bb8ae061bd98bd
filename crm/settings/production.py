"""Production: refuses to start without a secret key; HTTPS only (HSTS, secure cookies, a
redirect), JSON log lines; no demo key. `manage.py check --deploy` is clean with these
defaults (customers/tests/test_production_ops.py runs it)."""

from django.core.exceptions import ImproperlyConfigured

from crm.settings.base import *  # noqa: F403
from crm.settings.base import database_timeouts, logging_config
from crm.settings.env import env_bool, env_str

if not SECRET_KEY:  # noqa: F405
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
DEBUG = False
CRM_ALLOW_DEMO_KEY = False
WEBHOOKS_ALLOW_PRIVATE_URLS = False  # never: endpoints must be public https:// URLs

# A database that is away costs a request seconds, then a 503 (customers/outage.py): 2 s to
# connect (DJANGO_DB_CONNECT_TIMEOUT), 5 s for a web request's statement
# (DJANGO_DB_STATEMENT_TIMEOUT, milliseconds; commands and exports have no limit: base.py).
# A request waits at most 1 s for a pooled connection (DJANGO_DB_POOL_SIZE): with the
# database away it then answers 503 well within 3 s, even on a busy machine.
database_timeouts(
    DATABASES["default"],  # noqa: F405
    connect_timeout=int(env_str("DJANGO_DB_CONNECT_TIMEOUT", "2")),
    pool_timeout=1.0,
)
DB_REQUEST_STATEMENT_TIMEOUT_MS = int(env_str("DJANGO_DB_STATEMENT_TIMEOUT", "5000"))


def env_seconds(name: str, default: int) -> int:
    raw = env_str(name, str(default)).strip()
    if not raw.isdigit():
        raise ImproperlyConfigured(f"{name} must be a whole number of seconds, not {raw!r}")
    return int(raw)


# HTTPS. Cookies are sent over HTTPS only, and a plain-HTTP request is redirected to HTTPS
# (except the probes, which load balancers send over plain HTTP to the process itself).
# DJANGO_SECURE_COOKIES=false (a trial over plain HTTP, such as bench/ on the loopback) also
# turns the redirect's default off; DJANGO_SECURE_SSL_REDIRECT sets it on its own.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", SESSION_COOKIE_SECURE)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Behind a proxy that terminates TLS the app sees plain HTTP: name the header the proxy sets
# to `https` on the requests it received over HTTPS (`X-Forwarded-Proto`), or the redirect
# would loop. Only when that proxy overwrites the header a client sends: otherwise a client
# could claim HTTPS. Unset by default: nothing a client sends is trusted.
PROXY_SSL_HEADER = env_str("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip()
if PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
# Strict-Transport-Security on HTTPS responses: browsers then refuse plain HTTP to this host
# (and its subdomains) for a year. Start lower (e.g. 300) on a first deployment, raise it once
# HTTPS is known to work; 0 sends no header. `preload` only allows submitting the domain to
# the browsers' preload list, which is done by hand.
SECURE_HSTS_SECONDS = env_seconds("DJANGO_SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True

# One JSON object a line on stdout, each with the request's id (customers/logging.py).
LOGGING = logging_config(
    env_str("DJANGO_LOG_FORMAT", "json").strip(), env_str("DJANGO_LOG_LEVEL", "INFO")
)
