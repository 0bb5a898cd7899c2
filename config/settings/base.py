"""Production-safe settings; everything comes from environment variables.

dev.py and test.py only relax what a laptop or the test suite needs.
"""

import hashlib
import hmac
import ipaddress
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_secret, env_str
from .safety import is_relaxed, refuse_unsafe_start

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DJANGO_DEBUG", False)
# With DEBUG on, the app's own 404 and 500 pages still show (core.middleware.AppErrorPagesMiddleware);
# true shows Django's debug pages instead (URL patterns tried, the traceback in the browser).
DEBUG_ERROR_PAGES = env_bool("DJANGO_DEBUG_ERROR_PAGES", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE.")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    # Before django.contrib.auth, so that the changepassword and createsuperuser commands of accounts replace
    # auth's (the first app listed wins): both go through the audited services.
    "accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "core",
    "audit",
    "registry",
    "approvals",
    "webhooks",
    "notifications",
    "mlflow_api",
    "demo",
    "csp",
]

MIDDLEWARE = [
    "core.metrics.MetricsMiddleware",  # first: it times everything below
    "django.middleware.security.SecurityMiddleware",
    "core.csp.CSPMiddleware",  # django-csp's, with the policy of most answers built once
    "core.middleware.RequestIdMiddleware",
    # A database or cache that cannot be reached: 503, Retry-After, logged once per outage (core/outage.py).
    "core.outage.OutageMiddleware",
    "core.middleware.NulCharacterMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.AppErrorPagesMiddleware",  # last: with DEBUG on, the app's 404 and 500 pages
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                # The count on the header's Inbox link (one query per page for people who may review).
                "approvals.context_processors.inbox_badge",
            ],
        },
    },
]


def _database(url: str) -> dict:
    config = dj_database_url.parse(url, conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE transactions take the write lock at BEGIN, so two writers queue instead of one
        # failing half-way with "database is locked"; WAL lets readers run beside the writer.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        config["CONN_MAX_AGE"] = 0 if config["NAME"] == ":memory:" else config["CONN_MAX_AGE"]
        # The file holds live session keys and token hashes: created owner-only (config/db/sqlite3).
        config["ENGINE"] = "config.db.sqlite3"
    else:
        # Health checks cost a round trip per request; a dead connection fails one request and is replaced.
        config["CONN_HEALTH_CHECKS"] = env_bool("DJANGO_CONN_HEALTH_CHECKS", False)
        # Server-side binding with prepared statements: the hot queries are planned once per connection, not
        # on every request. (Behind PgBouncer in transaction mode this needs PgBouncer 1.21 or later.)
        config["OPTIONS"] = {
            # A database that does not answer fails the request (or the readiness probe) in seconds instead of
            # holding the web worker for the operating system's TCP timeout.
            "connect_timeout": env_int("DJANGO_DB_CONNECT_TIMEOUT", 2),
            "server_side_binding": True,
            "prepare_threshold": env_int("DJANGO_PG_PREPARE_THRESHOLD", 5),
        }
    return config


DATABASES = {"default": _database(env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'registry.db'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "accounts.backends.PersonBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: anonymous visitors hold no object permissions
GUARDIAN_RAISE_403 = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_str("DJANGO_STATIC_ROOT") or str(VAR_DIR / "staticfiles")

_redis_url = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis_url}
        if _redis_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Celery: with no broker configured, tasks run in-process when they are enqueued (after commit).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_ACKS_LATE = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    # Requests also expire when read or acted on; this records expiry for requests nobody looks at.
    "expire-due-promotions": {"task": "approvals.tasks.expire_due_promotions", "schedule": 300.0},
}

# The audit log: its origin line (unique per deployment, never reused) and the key that signs checkpoints.
AUDIT_LOG_ORIGIN = env_str("AUDIT_LOG_ORIGIN") or "model-registry.local/audit/v1"
AUDIT_SIGNING_KEY_FILE = env_str("AUDIT_SIGNING_KEY_FILE") or str(VAR_DIR / "audit-signing-key.pem")
AUDIT_SIGNING_KEY_AUTOCREATE = env_bool("AUDIT_SIGNING_KEY_AUTOCREATE", False)
# The witness: a directory outside the database holding a copy of every signed checkpoint (audit/witness.py).
# Required in production; keep it on other storage than the database and its backups.
AUDIT_WITNESS_DIR = env_str("AUDIT_WITNESS_DIR") or None
# Production refuses to start with DEBUG on, a weak or published secret key, or no signing key (safety.py).
if not is_relaxed():
    refuse_unsafe_start(
        debug=DEBUG,
        secret_key=SECRET_KEY,
        signing_key_file=AUDIT_SIGNING_KEY_FILE,
        signing_key_autocreate=AUDIT_SIGNING_KEY_AUTOCREATE,
        witness_dir=AUDIT_WITNESS_DIR,
    )
# Only the test suite may empty the audit tables (Django's flush between transactional tests).
AUDIT_ALLOW_FLUSH = False
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {"task": "audit.tasks.make_checkpoint", "schedule": 60.0}
# Outbound messages (approvals/tasks.py): re-enqueue those due whose task was lost (broker or worker down).
# DJANGO_OUTBOX_SWEEP_SECONDS (how often) and DJANGO_OUTBOX_FIRST_RETRY_SECONDS (the wait after a first
# failed attempt, doubling after each next one): shortened only by the fault tests (tests/test_faults.py).
OUTBOX_SWEEP_SECONDS = env_int("DJANGO_OUTBOX_SWEEP_SECONDS", 60)
OUTBOX_FIRST_RETRY_SECONDS = env_int("DJANGO_OUTBOX_FIRST_RETRY_SECONDS", 60)
CELERY_BEAT_SCHEDULE["sweep-outbox"] = {
    "task": "approvals.tasks.sweep_outbox",
    "schedule": float(OUTBOX_SWEEP_SECONDS),
}

# While the database (or the Redis cache) cannot be reached, requests answer 503 with this Retry-After.
OUTAGE_RETRY_AFTER_SECONDS = env_int("DJANGO_OUTAGE_RETRY_AFTER_SECONDS", 5)
# /readyz fails ("outbox": "lagging") when a pending outbox message has been due longer than this; 0: never.
OUTBOX_LAG_READY_SECONDS = env_int("DJANGO_OUTBOX_LAG_READY_SECONDS", 900)

# E-mail to people (notifications/): what needs their review, what was decided, what is about to expire,
# webhooks that keep failing. Sent over SMTP from the e-mail outbox by the Celery worker; dev.py prints them
# on the console instead (when EMAIL_HOST is not set), the tests keep them in memory.
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND") or "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # implicit TLS (port 465)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)  # STARTTLS (port 587)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set at most one of EMAIL_USE_TLS and EMAIL_USE_SSL.")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "model-registry@localhost"
# The registry's public address, for links in e-mails (the review page of a promotion): scheme and host.
REGISTRY_BASE_URL = (env_str("REGISTRY_BASE_URL") or "http://localhost:8000").rstrip("/")
# Warn about an open promotion request this many hours before it expires (once per request and person).
NOTIFY_EXPIRY_HOURS = env_int("NOTIFY_EXPIRY_HOURS", 24)
CELERY_BEAT_SCHEDULE["sweep-emails"] = {"task": "notifications.tasks.sweep_emails", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["warn-expiring-promotions"] = {
    "task": "notifications.tasks.warn_expiring_promotions",
    "schedule": 3600.0,
}

# How long CI should wait between polls of an undecided promotion (the Retry-After header).
PROMOTION_POLL_SECONDS = env_int("DJANGO_PROMOTION_POLL_SECONDS", 10)

# Callbacks to CI when a promotion is decided, signed Standard Webhooks style with this secret.
# Unset: a secret derived from SECRET_KEY (receivers never need Django's own secret). Set it explicitly so
# that receivers keep working when SECRET_KEY rotates.
WEBHOOK_SECRET = (
    env_secret("DJANGO_WEBHOOK_SECRET")
    or hmac.new(SECRET_KEY.encode(), b"promotion-callbacks", hashlib.sha256).hexdigest()
)
# Where callbacks may go (core/netguard.py). A callback_url must resolve to public addresses only (no
# loopback, private, link-local, … address), checked when the request is made and at each delivery, unless:
# - its host is in CALLBACK_ALLOWED_HOSTS: when that list is not empty, it holds the only hosts callback_url
#   may name, and their addresses are trusted (e.g. "127.0.0.1" for a receiver on the same machine);
# - the address is in one of CALLBACK_ALLOWED_NETWORKS (CIDR), for internal receivers on any host.
CALLBACK_ALLOWED_HOSTS = env_list("DJANGO_CALLBACK_ALLOWED_HOSTS", [])
CALLBACK_ALLOWED_NETWORKS = env_list("DJANGO_CALLBACK_ALLOWED_NETWORKS", [])
for _network in CALLBACK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"DJANGO_CALLBACK_ALLOWED_NETWORKS: {_network!r} is not a network: {_exc}"
        ) from None
# One delivery attempt (name lookup, connection, TLS, request, status line) must finish in this many seconds.
WEBHOOK_TIMEOUT = env_int("DJANGO_WEBHOOK_TIMEOUT", 5)

# CI signs in with its OIDC ID token (accounts/oidc.py, docs/operations.md "Trust policies"). An issuer's
# signing keys (JWKS) are cached for OIDC_JWKS_CACHE_SECONDS; a token naming an unknown key id refetches them,
# at most once per OIDC_JWKS_REFETCH_SECONDS per issuer. A minted registry token lives at most
# OIDC_TOKEN_MAX_SECONDS (never longer than the ID token itself).
OIDC_JWKS_CACHE_SECONDS = env_int("OIDC_JWKS_CACHE_SECONDS", 300)
OIDC_JWKS_REFETCH_SECONDS = env_int("OIDC_JWKS_REFETCH_SECONDS", 60)
OIDC_FETCH_TIMEOUT = env_int("OIDC_FETCH_TIMEOUT", 5)
OIDC_LEEWAY_SECONDS = env_int("OIDC_LEEWAY_SECONDS", 60)
OIDC_TOKEN_MAX_SECONDS = 3600
# Issuers are fetched over HTTPS only. The tests run an issuer on plain HTTP on a loopback address: this turns
# that on, for loopback hosts only (127.0.0.0/8, ::1, localhost); never in production.
OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS = env_bool("OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS", False)
# Refused exchanges: after OIDC_EXCHANGE_FAILURE_LIMIT refusals from one client address (IPv4 address, IPv6
# /64) within a window of OIDC_EXCHANGE_FAILURE_WINDOW seconds, the exchange answers 429 until the window
# ends, before any key is fetched or signature checked (accounts/ratelimit.py).
OIDC_EXCHANGE_FAILURE_LIMIT = env_int("OIDC_EXCHANGE_FAILURE_LIMIT", 20)
OIDC_EXCHANGE_FAILURE_WINDOW = env_int("OIDC_EXCHANGE_FAILURE_WINDOW", 300)
if OIDC_EXCHANGE_FAILURE_LIMIT < 1 or OIDC_EXCHANGE_FAILURE_WINDOW < 1:
    raise ImproperlyConfigured("OIDC_EXCHANGE_FAILURE_LIMIT and OIDC_EXCHANGE_FAILURE_WINDOW must be >= 1")

# Single sign-on for people (accounts/sso.py, docs/operations.md "Single sign-on"): the OpenID Connect
# authorization code flow with PKCE against the company's identity provider. Off while SSO_OIDC_ISSUER is
# empty.
SSO_OIDC_ISSUER = env_str("SSO_OIDC_ISSUER", "") or ""
SSO_OIDC_CLIENT_ID = env_str("SSO_OIDC_CLIENT_ID", "") or ""
SSO_OIDC_CLIENT_SECRET = env_secret("SSO_OIDC_CLIENT_SECRET") or ""
SSO_OIDC_SCOPES = env_str("SSO_OIDC_SCOPES", "openid email profile") or "openid email profile"
SSO_LABEL = env_str("SSO_LABEL", "company sign-in") or "company sign-in"
# The claim that names the account on first sign-in, and the claim listing the person's groups.
SSO_USERNAME_CLAIM = env_str("SSO_USERNAME_CLAIM", "preferred_username") or "preferred_username"
SSO_GROUPS_CLAIM = env_str("SSO_GROUPS_CLAIM", "groups") or ""
# group=team pairs: at every sign-in the person is put in each listed team whose group they are in, and taken
# out of each listed team whose group they are not in (audited); teams not listed are left alone.
SSO_GROUP_TEAMS = env_list("SSO_GROUP_TEAMS", [])
# An account that exists already under the name the provider gives (e.g. made with a password before SSO) is
# linked on its first single sign-on only when this is on; off, that sign-in is refused.
SSO_LINK_EXISTING_ACCOUNTS = env_bool("SSO_LINK_EXISTING_ACCOUNTS", False)
_insecure_sso = SSO_OIDC_ISSUER and not SSO_OIDC_ISSUER.startswith("https://")
if _insecure_sso and not OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS:
    raise ImproperlyConfigured(f"SSO_OIDC_ISSUER must be an https:// URL; got {SSO_OIDC_ISSUER!r}")
# Off: people sign in through single sign-on only (the password form refuses everyone).
PASSWORD_SIGN_IN = env_bool("DJANGO_PASSWORD_SIGN_IN", True)

# /metrics (core/metrics.py) answers a scraper that shows METRICS_TOKEN as a bearer token or comes from one of
# METRICS_ALLOWED_NETWORKS (CIDR); everyone else gets 404. Neither set: nobody.
METRICS_TOKEN = env_secret("METRICS_TOKEN") or ""
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", [])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network: {_exc}"
        ) from None

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The first one's WWW-Authenticate header makes an anonymous call answer 401, not 403.
        # No HTTP basic: a password on every call is slow to check and invites guessing; people use
        # the browser session or a personal token.
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.authentication.TokenScopes",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON within the registry's limits (core/parsers.py): depth, number range, size, valid strings.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    # OPTIONS names the route and its media types; the shapes are in the OpenAPI schema.
    "DEFAULT_METADATA_CLASS": "core.api.RouteMetadata",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # ?format= names an export format (audit export), not a renderer.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Model governance registry API",
    "DESCRIPTION": (
        "Register model, prompt and dataset versions with their lineage and evaluations, and move "
        "them between stages. Every change is recorded in the audit log."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI is served from the installed package: the app works offline, with no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets of scopes: every token scope, and the ones a trust policy may give.
    "ENUM_NAME_OVERRIDES": {
        "ScopesEnum": "accounts.models.Scope",
        "TrustPolicyScopesEnum": "accounts.oidc.POLICY_SCOPES",
    },
    # Every operation lists its error answers (RFC 9457 problems) with examples: added in one place.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.problem_responses",
    ],
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Failed sign-ins: after LOGIN_FAILURE_LIMIT failures for one username or one address within
# LOGIN_FAILURE_WINDOW seconds, sign-in is refused for the rest of the window.
LOGIN_FAILURE_LIMIT = env_int("DJANGO_LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_WINDOW = env_int("DJANGO_LOGIN_FAILURE_WINDOW", 900)

# Security: secure by default; dev.py relaxes what plain HTTP on localhost needs.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Load balancers probe over plain HTTP: the health checks answer there instead of redirecting.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Content Security Policy (django-csp): scripts and styles from this origin only, or inline ones carrying the
# request's nonce (the Swagger UI's start-up script, templates/api/swagger_ui.html). Swagger UI's stylesheet
# draws its icons as data: images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}


def logging_config(fmt: str, level: str) -> dict:
    """Logs on stderr, one line per record, each carrying the request id (core/logging.py): JSON objects
    (`json`, the production default) or plain text (`text`); django.request's 4xx answers at INFO."""
    if fmt not in {"json", "text"}:
        raise ImproperlyConfigured(f"DJANGO_LOG_FORMAT must be json or text; got {fmt!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "core.logging.RequestIdFilter"},
            "client_errors_at_info": {"()": "core.logging.ClientErrorsAtInfo"},
        },
        "formatters": {
            "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
            "json": {
                "()": "core.logging.JsonFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            },
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["request_id"]},
        },
        "loggers": {"django.request": {"filters": ["client_errors_at_info"]}},
        "root": {"handlers": ["console"], "level": level},
    }


LOGGING = logging_config(env_str("DJANGO_LOG_FORMAT") or "json", env_str("DJANGO_LOG_LEVEL") or "INFO")
# Celery's worker and beat log through the same configuration instead of replacing the root logger's handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
