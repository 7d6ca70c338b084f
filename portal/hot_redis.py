"""The default cache's Redis, for the commands of the API's hot path (throttle and call counters).

Django's ``RedisCache`` builds a new client object for every operation and offers no scripts, so
the hot path keeps one module-level ``redis.Redis`` with its own connection pool (``redis`` resets
a pool inherited across ``fork``) and short timeouts: a Redis that is down or hung costs a request
at most about a second, and callers then degrade instead of failing (see ``warn_unavailable``).

``redis_client()`` is None when the default cache is not Redis (locmem in development and in the
SQLite tests): callers then keep their plain cache or database code path.
"""

import logging
import threading
import time
from functools import cache

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

REDIS_CACHE_BACKEND = "django.core.cache.backends.redis.RedisCache"
TIMEOUT_SECONDS = 0.5
WARNING_INTERVAL_SECONDS = 60.0

_warned_at: dict[str, float] = {}
_warned_lock = threading.Lock()


@cache
def redis_client() -> redis.Redis | None:
    """The pooled client of the default cache's Redis, or None when the cache is not Redis."""
    config = settings.CACHES["default"]
    if config["BACKEND"] != REDIS_CACHE_BACKEND:
        return None
    location = config["LOCATION"]
    if isinstance(location, list | tuple):
        location = location[0]
    elif "," in location:
        location = location.split(",")[0]
    return redis.Redis.from_url(
        location,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        health_check_interval=30,
    )


@cache
def script(source: str) -> redis.commands.core.Script:
    """A Lua script run with EVALSHA (one round trip; EVAL once if Redis forgot it)."""
    client = redis_client()
    if client is None:
        raise RuntimeError("no Redis cache configured")
    return client.register_script(source)


@receiver(setting_changed)
def _forget_client(*, setting: str, **kwargs) -> None:
    if setting == "CACHES":
        redis_client.cache_clear()
        script.cache_clear()


def warn_unavailable(logger: logging.Logger, what: str, error: Exception) -> None:
    """Log that Redis failed, at most once a minute per ``what`` and process (no log flood)."""
    now = time.monotonic()
    with _warned_lock:
        last = _warned_at.get(what)
        if last is not None and now - last < WARNING_INTERVAL_SECONDS:
            return
        _warned_at[what] = now
    logger.warning("Redis unavailable (%s): %s: %s", what, type(error).__name__, error)
