"""Settings for the Usage Portal: one module, every value read through django-environ.

Local use needs no variable at all (SQLite under var/, an embedded filesystem broker, a
local-memory cache). Production differs only by environment variables; see .env.example.
"""

import datetime as dt
import warnings
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# The local state (SQLite file, embedded broker): a folder kept in the repository, so that it
# exists in any clone without the settings creating anything when they are imported.
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)

_LOCAL_SECRET_KEY = "django-insecure-local-development-only-never-use-this-in-production-0123"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="")
if not DEBUG and (len(SECRET_KEY) < 50 or SECRET_KEY == _LOCAL_SECRET_KEY):
    raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY to a random value of at least 50 characters.")
SECRET_KEY = SECRET_KEY or _LOCAL_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "portal",
    "accounts",
    "usage",
    "webhooks",
]

# "PagesOnly…" are Django's and whitenoise's middlewares, skipped on the key-authenticated
# REST API, which has no use for them (portal/middleware.py); the others run for every request.
MIDDLEWARE = [
    "portal.middleware.SecurityHeadersMiddleware",
    "portal.middleware.RejectNulMiddleware",
    "portal.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.PagesOnlyWhiteNoiseMiddleware",
    "portal.middleware.PagesOnlySessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "portal.middleware.PagesOnlyAuthenticationMiddleware",
    "portal.middleware.PagesOnlyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: refuses a locked-out login before the login view runs.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
# Off: a health check is a ``SELECT 1`` round trip at the first query of every request. A
# connection that died anyway (database restarted) fails the one request that meets it (503);
# Django then closes it at the request's end and the next request connects afresh.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database host that does not answer fails a request (503) in seconds rather than hanging it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
    # Lets psycopg prepare statements (Django turns it off). Only the API key lookup asks for it
    # (portal/api/authentication.py): Django's own cursors bind on the client and never prepare.
    DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 100)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file-backed test database lets a real Celery worker process see the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            # WAL lets readers work during imports; a 64 MB page cache keeps the job indexes hot.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://usage-portal")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a login while its username and address are locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login lockout (/accounts/login/ and /admin/login/): after AXES_FAILURE_LIMIT failures of one
# username from one address, that pair is refused (429) for AXES_COOLOFF_MINUTES.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "portal.ratelimit.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Password-reset mails: at most this many per address asked for, and per client address, an hour.
PASSWORD_RESET_EMAIL_LIMIT = env.int("PASSWORD_RESET_EMAIL_LIMIT", default=3)
PASSWORD_RESET_IP_LIMIT = env.int("PASSWORD_RESET_IP_LIMIT", default=10)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# Before the first ``collectstatic`` the folder is missing; whitenoise would warn at every start
# (``collectstatic`` creates it).
warnings.filterwarnings("ignore", message="No directory at")
# Until ``collectstatic`` has written its manifest, whitenoise serves the files from the source
# folders (the finders) and the storage keeps their plain names (``portal/storage.py``), so pages
# render with DEBUG off; a start-up warning says to run it (``portal/apps.py``).
WHITENOISE_USE_FINDERS = not (STATIC_ROOT / "staticfiles.json").exists()
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "portal.storage.ForgivingManifestStaticFilesStorage"
    },
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Usage Portal <noreply@localhost>")

# HTTPS: each switch is its own variable and off by default, so DEBUG=False still serves
# plain HTTP on loopback or behind a TLS-terminating proxy.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
# Health probes come from inside the network over plain HTTP: never redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Celery. The default broker is kombu's filesystem transport under var/: no server needed.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env.str("CELERY_FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    # portal.celery creates the folders when the Celery app is configured, not here.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Where the broadcast (remote control) tables live; kombu's default is ./control.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A task taken but not acknowledged (acks_late: a worker killed in the middle) goes back to
    # the queue after this many seconds; kombu's default is an hour. Longer than the longest hard
    # time limit of a task (25 minutes), so a task still running is never handed out twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=1800)
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

USAGE_RECOMPUTE_CRON = env.str("USAGE_RECOMPUTE_CRON", default="0 2 * * *")


def _crontab_from(expression: str) -> crontab:
    fields = expression.split()
    if len(fields) != 5:
        raise ImproperlyConfigured(
            f"USAGE_RECOMPUTE_CRON must have 5 fields (minute hour day month weekday), got {expression!r}"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"USAGE_RECOMPUTE_CRON is not a valid crontab: {exc}") from exc


CELERY_BEAT_SCHEDULE = {
    "nightly-usage-recompute": {
        "task": "usage.tasks.recompute_usage",
        "schedule": _crontab_from(USAGE_RECOMPUTE_CRON),
    },
    # Re-sends webhook deliveries whose Celery message was lost (broker down at commit, a crash).
    "webhook-deliveries-sweep": {
        "task": "webhooks.tasks.deliveries_sweep",
        "schedule": crontab(minute="*/5"),
    },
    # With Redis as the cache, API calls are counted there and moved to the database by this
    # task (and before the usage pages read them); without Redis it has nothing to do.
    "flush-api-calls": {
        "task": "usage.tasks.flush_api_calls",
        "schedule": env.float("API_CALLS_FLUSH_SECONDS", default=5.0),
    },
}

# Webhooks: when each retry of a failed delivery is due, in seconds after the first try.
WEBHOOK_RETRY_SCHEDULE = env.list(
    "WEBHOOK_RETRY_SCHEDULE", cast=int, default=[5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
)
# Development and tests only: lets webhook URLs be http:// and reach private addresses.
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=False)

API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="600/min")
# Requests per service key (job ingestion), counted apart from the API keys'.
API_INGEST_THROTTLE_RATE = env.str("API_INGEST_THROTTLE_RATE", default="6000/min")
# Failed authentications (401s) allowed per client address and window before it gets 429s.
API_AUTH_FAILURE_RATE = env.str("API_AUTH_FAILURE_RATE", default="30/min")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "portal.api.exceptions.api_exception_handler",
    # Proxies in front of the portal whose X-Forwarded-For entry is trusted to name the client
    # (0: use the socket's address, so the header cannot be forged to dodge a limit).
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Usage Portal API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "DESCRIPTION": (
        "Usage of your organisation as JSON, authenticated with an API key sent as "
        "`Authorization: Bearer <key>`. Every request made with a valid key counts as one API call "
        "of its organisation, whatever the answer. Responses are never cached (`Cache-Control: no-store`). "
        "The ingestion endpoints (`/api/v1/ingest/…`) are for the job platform, with a service key."
    ),
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "usage.api.ingest_serializers.JOB_STATUSES",
        "IngestStatusEnum": "usage.api.ingest_serializers.STATUSES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
