"""Settings of the anchor: only what one authenticated JSON answer needs.

No app but DRF, no middleware, no authentication or permission classes. The database, the cache
and the signing secret come from the portal's variables (``DATABASE_URL``, ``CONN_MAX_AGE``,
``CACHE_URL``, ``SECRET_KEY``) with the portal's defaults and connection settings, so the two
servers differ only by what runs inside a request.
"""

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")  # key digests are HMACs keyed with the portal's secret
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = ["rest_framework"]
MIDDLEWARE = []
ROOT_URLCONF = "bench.anchor.urls"
WSGI_APPLICATION = "bench.anchor.wsgi.application"

DATABASES = {"default": env.db_url("DATABASE_URL")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://anchor")}

USE_TZ = True
TIME_ZONE = "UTC"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
