"""Settings shared by every environment; what differs per deploy comes from the environment."""

from base64 import b64encode
from datetime import timedelta
from hashlib import sha256
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_HASHES
from django.core.exceptions import ImproperlyConfigured

from crm.settings.env import env_bool, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Failed admin logins, per username and address (the lockout below).
    "axes",
    "customers",
]

MIDDLEWARE = [
    # Outermost: every response, whoever answers it, carries the request's X-Request-ID.
    "customers.request_id.RequestIdMiddleware",
    # Each API key's rate limit, before any view or query; its 429 is the envelope already.
    "customers.api.ratelimit.ApiRateLimitMiddleware",
    # A database that cannot be reached: a 503 (the envelope on /v1/, a plain page elsewhere)
    # whichever layer met it, never a 500; the request statement timeout (customers/outage.py).
    "customers.outage.DatabaseUnavailableMiddleware",
    # Next, so that every /v1/ error, whichever layer answers it, gets the envelope.
    "customers.api.middleware.ApiErrorEnvelopeMiddleware",
    # `/v1/customers/` -> 308 `/v1/customers` (query kept).
    "customers.operations.TrailingSlashRedirectMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The Content-Security-Policy of HTML pages (CONTENT_SECURITY_POLICY below).
    "customers.content_security.HtmlContentSecurityPolicyMiddleware",
    # Serves collected static files (admin, browsable API, Swagger UI) under gunicorn.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a login refused for a locked-out username into the
    # login page with the lockout's message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "crm.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "customers.context_processors.environment_switcher",
            ],
        },
    },
]

WSGI_APPLICATION = "crm.wsgi.application"
ASGI_APPLICATION = "crm.asgi.application"

DEFAULT_DATABASE_URL = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", DEFAULT_DATABASE_URL),
        conn_max_age=int(env_str("DJANGO_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# DJANGO_DB_POOL_SIZE=N: on PostgreSQL, each process shares a pool of up to N connections
# (psycopg_pool, Django's "pool" option) among its threads, instead of one persistent
# connection per thread (DJANGO_CONN_MAX_AGE, which a pool replaces).
DB_POOL_SIZE = int(env_str("DJANGO_DB_POOL_SIZE", "0"))
if DB_POOL_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # With CONN_HEALTH_CHECKS (above), Django gives the pool psycopg's `check_connection`:
    # a connection is tried (one empty query) before a request gets it, so those a database
    # restart broke are thrown away rather than handed out to fail.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_SIZE,
        "timeout": 10,  # seconds a request waits for a free connection: database_timeouts()
    }


def database_timeouts(
    database: dict, *, connect_timeout: int, pool_timeout: float | None = None
) -> None:
    """PostgreSQL's client-side timeouts: `connect_timeout` seconds to open a connection
    (libpq's minimum is 2; it applies to each address the host name resolves to, so name
    the host by its address), and `pool_timeout` (as long by default) for a free connection
    of the pool (which, while the database is away, has none to give); a connection whose
    sent data goes unacknowledged for 10 s, or whose idle peer stops answering keepalives
    for 60 s, is dropped (a network that loses the server, rather than a server that
    refuses)."""
    if database["ENGINE"] != "django.db.backends.postgresql":
        return
    options = database.setdefault("OPTIONS", {})
    if options.get("pool"):
        # A failed connection attempt of the pool is retried with a growing delay (1, 2,
        # 4 s...), for this long: then the next request starts a new attempt at once, so a
        # pool recovers within seconds of the database's return, however long it was away.
        options["pool"].update(
            timeout=connect_timeout if pool_timeout is None else pool_timeout,
            reconnect_timeout=connect_timeout,
        )
    options.update(
        {
            "connect_timeout": connect_timeout,
            "tcp_user_timeout": 10_000,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    )


# DJANGO_DB_CONNECT_TIMEOUT: seconds to open a connection (production's default is 2).
# DJANGO_DB_STATEMENT_TIMEOUT: milliseconds one statement of a web request may run, 0 for no
# limit (production's default is 5000): set on the connections web requests open
# (customers/outage.py), never on those of commands (migrate, imports, workers), and lifted
# inside a streamed export's own transaction (customers/exports.py).
database_timeouts(
    DATABASES["default"], connect_timeout=int(env_str("DJANGO_DB_CONNECT_TIMEOUT", "10"))
)
DB_REQUEST_STATEMENT_TIMEOUT_MS = int(env_str("DJANGO_DB_STATEMENT_TIMEOUT", "0"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default takes a few concurrent writers (the dev server's threads, a
    # command beside it): WAL lets readers go on while one writes; every transaction takes
    # the write lock up front (IMMEDIATE), so a writer waits for the lock (up to `timeout`
    # seconds) instead of failing when a read lock it holds cannot be upgraded.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

# Read replicas (customers/db_router.py): DATABASE_REPLICA_URLS, comma-separated PostgreSQL
# URLs of streaming replicas of DATABASE_URL (unset: none, and nothing below costs anything).
# The list, the search, the export and the event log read from a replica whose replay lags
# at most REPLICA_MAX_LAG_SECONDS (checked every REPLICA_CHECK_SECONDS per process; one that
# does not answer is left alone for REPLICA_RETRY_SECONDS); a scope written through the API
# reads from the primary for REPLICA_READ_YOUR_WRITES_SECONDS (a marker in the "replicas"
# cache: Redis with REDIS_URL). Keep the lag limit plus the check interval below the
# read-your-writes window.
DATABASE_REPLICAS: tuple[str, ...] = ()
for _number, _url in enumerate(env_list("DATABASE_REPLICA_URLS", []), start=1):
    _alias = f"replica_{_number}"
    DATABASES[_alias] = dj_database_url.parse(
        _url,
        conn_max_age=int(env_str("DJANGO_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
    if DATABASES[_alias]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS: {_alias} is not a PostgreSQL URL")
    # A replica that does not answer costs a read this long once, then is skipped.
    DATABASES[_alias].setdefault("OPTIONS", {})["connect_timeout"] = int(
        env_str("REPLICA_CONNECT_TIMEOUT_SECONDS", "2")
    )
    # A test run reads the primary's test database through it (and never creates one there).
    DATABASES[_alias]["TEST"] = {"MIRROR": "default"}
    DATABASE_REPLICAS += (_alias,)
if DATABASE_REPLICAS:
    DATABASE_ROUTERS = ["customers.db_router.PrimaryReplicaRouter"]
REPLICA_READ_YOUR_WRITES_SECONDS = float(env_str("REPLICA_READ_YOUR_WRITES_SECONDS", "5"))
REPLICA_MAX_LAG_SECONDS = float(env_str("REPLICA_MAX_LAG_SECONDS", "2"))
REPLICA_CHECK_SECONDS = float(env_str("REPLICA_CHECK_SECONDS", "1"))
REPLICA_RETRY_SECONDS = float(env_str("REPLICA_RETRY_SECONDS", "5"))

# DATABASE_PGBOUNCER=true: every PostgreSQL connection (the primary's and the replicas') goes
# through PgBouncer in transaction pooling mode, where consecutive transactions of one
# connection may run on different server connections: no server-side cursors outside a
# transaction (QuerySet.iterator() fetches client-side; the export declares its cursor
# inside its own transaction, which holds one server connection: it still streams) and no
# prepared statements (psycopg's, off as Django leaves them; said here so none comes back).
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", False)
if DATABASE_PGBOUNCER:
    for _database in DATABASES.values():
        if _database["ENGINE"] == "django.db.backends.postgresql":
            _database["DISABLE_SERVER_SIDE_CURSORS"] = True
            _database.setdefault("OPTIONS", {})["prepare_threshold"] = None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out username before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Admin (and browsable API) logins: after 5 failed attempts for one username from one address,
# each within 15 minutes of the previous, that username is refused from that address for 15
# minutes, even with its right password (customers/login_throttling.py says so on the page).
# Attempts are rows in the database (django-axes' default handler), so every process and
# machine sees them. `manage.py axes_reset_username USERNAME` lifts a lockout.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A locked-out attempt does not extend the lockout: it ends 15 minutes after the 5th failure.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A successful login forgets the failures before it.
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "customers.login_throttling.lockout_response"
# No banner on every start (each failure and lockout is still logged as a warning).
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/admin/"

# A list filter may carry 1000 ids repeated (`customer_ids=a&customer_ids=b...`) beside
# other parameters; Django's default of 1000 fields would refuse that with an HTML 400.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 5000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "customers.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["customers.api.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": [
        "customers.api.renderers.JSONRenderer",
        "customers.api.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["customers.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "customers.api.errors.api_exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "customers.api.negotiation.ContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": None,
    "DEFAULT_FILTER_BACKENDS": [],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # OPTIONS names the view and its media types (customers/api/metadata.py).
    "DEFAULT_METADATA_CLASS": "customers.api.metadata.ApiMetadata",
}

# The OpenAPI schema (/v1/openapi.json) and Swagger UI (/v1/docs/): customers.api.schema
# describes the views; Swagger UI's files come from drf-spectacular-sidecar, never a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "Customer CRM API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "The customers of one tenant and environment (the *scope*), which the API key "
        "determines: send it as `Authorization: Bearer <key>` or as `x-api-key: <key>`. "
        "No parameter or body field can widen the scope.\n\n"
        "Bodies are JSON (`application/json`) only. Every error has one shape, "
        '`{"success": false, "error": {"code", "message", "details"}}` (see `ErrorEnvelope`): '
        "`details` maps each offending parameter or field to its messages. Writes accept an "
        "`Idempotency-Key` header. Methods a path does not list answer 405 "
        "(`method_not_allowed`), and an `Accept` header that excludes JSON answers 406 "
        "(`not_acceptable`), in the same envelope."
    ),
    "SCHEMA_PATH_PREFIX": "/v1",
    "TAGS": [{"name": "customers", "description": "Customers of the API key's scope."}],
    # The schema view itself is not part of the API it describes.
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # PUT and PATCH take the same all-optional body (CustomerUpdate): no Patched* copy.
    "COMPONENT_SPLIT_PATCH": False,
    # Parameters in the order the operations list them (the contract's), not alphabetical.
    "SORT_OPERATION_PARAMETERS": False,
    # What the API really accepts: JSON bodies only (known-traps.md, OpenAPI).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "ENUM_NAME_OVERRIDES": {
        "CustomerStatusEnum": "customers.models.CustomerStatus",
        "ErrorCodeEnum": "customers.api.schema.ERROR_CODE_CHOICES",
        # `asc`/`desc`: the list's `order` and a sort item's `direction`, one enum (two names
        # for one choice set is drf-spectacular's warning W001 in `check --deploy`).
        "OrderEnum": "customers.api.schema.ORDER_VALUES",
    },
    # Every operation a key calls may answer 429, and its answers carry the RateLimit headers.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "customers.api.schema.rate_limit_responses",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        "displayOperationId": True,
        # No badge fetched from validator.swagger.io: the page works offline.
        "validatorUrl": None,
    },
}

# The Content-Security-Policy of every HTML page (customers/content_security.py): this
# origin's files only. No 'unsafe-inline': an inline <script> or <style> must carry the
# request's nonce (`request.csp_nonce`; Swagger UI's and the browsable API's templates do),
# and an inline event handler or style attribute is refused, so they live in static files.
# `data:` images: the admin's and Swagger UI's stylesheets draw icons with them. DRF's
# templates write a few fixed style attributes (the browsable API's Filters button, its login
# page): those exact values are allowed by their hashes ('unsafe-hashes'), and no other.
DRF_STYLE_ATTRIBUTES = [
    "float: right; margin-right: 10px",
    "margin-top: 30px",
    "width: 320px; margin-left: auto; margin-right: auto",
    "margin: 0 0 20px;",
    "border: none",
]


def csp_hash(text: str) -> str:
    digest = b64encode(sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_HASHES, *map(csp_hash, DRF_STYLE_ATTRIBUTES)],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Rate limits per API key (customers/api/ratelimit.py): API_RATE_LIMIT requests per second,
# minute or hour (`100/s`, `6000/min`, `100000/h`), counted in the "ratelimit" cache: Redis
# when REDIS_URL is set, one count shared by every process and machine; otherwise each
# process's memory (development, tests: one process). A bad value stops the app here.
API_RATE_LIMIT = env_rate("API_RATE_LIMIT", "100/s")
REDIS_URL = env_str("REDIS_URL", "").strip()
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        f"REDIS_URL must be a redis://, rediss:// or unix:// URL, not {REDIS_URL!r}"
    )
# A Redis that does not answer within these seconds counts as down: the request is served
# without its limit (customers/api/ratelimit.py logs it) rather than kept waiting.
REDIS_TIMEOUT_SECONDS = 0.25


def ratelimit_cache(redis_url: str) -> dict:
    if not redis_url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl"}
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url,
        "KEY_PREFIX": "crm",
        "OPTIONS": {
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
        },
    }


CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": ratelimit_cache(REDIS_URL),
}
# Read replicas' read-your-writes markers (customers/db_router.py), shared like the counts.
CACHES["replicas"] = (
    ratelimit_cache(REDIS_URL)
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "replicas"}
)

# Webhooks (customers/webhooks.py): endpoint URLs must be https:// and resolve to public
# addresses, checked on save and again at delivery, unless this is true (development and
# tests, whose receivers listen on 127.0.0.1).
WEBHOOKS_ALLOW_PRIVATE_URLS = env_bool("WEBHOOKS_ALLOW_PRIVATE_URLS", False)
# How long a worker's claim on a delivery lasts: longer than an attempt (15 s), short enough
# that what a killed worker held is sent by another within 2 minutes.
WEBHOOKS_LEASE_SECONDS = float(env_str("WEBHOOKS_LEASE_SECONDS", "90"))
# How many deliveries one deliver_webhooks process sends at a time (threads that wait on the
# receivers; the database work stays on the worker's own thread). --concurrency overrides it.
WEBHOOKS_CONCURRENCY = int(env_str("WEBHOOKS_CONCURRENCY", "8"))

# Imports from the admin (customers/import_jobs.py): the largest upload accepted (bytes; a
# million realistic rows are ~300 MB), and how long a worker's claim on an import holds
# without its heartbeat (a killed worker's import is retried after it).
IMPORT_MAX_UPLOAD_BYTES = int(env_str("IMPORT_MAX_UPLOAD_BYTES", str(1024**3)))
IMPORT_LEASE_SECONDS = float(env_str("IMPORT_LEASE_SECONDS", "60"))

# A fixed, documented API key for the demo tenant (README curl examples). Only the dev
# settings allow `seed_demo` to create it; production never does.
CRM_ALLOW_DEMO_KEY = False

# Logging (customers/logging.py): every line written during a request carries its
# X-Request-ID as `request_id`. DJANGO_LOG_FORMAT `json` writes one JSON object a line to
# stdout (production's default), `text` a readable line to stderr (the default elsewhere).
LOG_FORMATS = {"json": "ext://sys.stdout", "text": "ext://sys.stderr"}


def logging_config(log_format: str, level: str) -> dict:
    if log_format not in LOG_FORMATS:
        raise ImproperlyConfigured(
            f"DJANGO_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}"
        )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "customers.logging.RequestIdFilter"}},
        "formatters": {
            "json": {"()": "customers.logging.JsonFormatter"},
            "text": {"()": "customers.logging.TextFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": LOG_FORMATS[log_format],
                "formatter": log_format,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }


LOGGING = logging_config(
    env_str("DJANGO_LOG_FORMAT", "text").strip(), env_str("DJANGO_LOG_LEVEL", "INFO")
)
