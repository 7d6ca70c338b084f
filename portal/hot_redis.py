"""The default cache's Redis, for the commands of the API's hot path (throttle and call counters,
cached response bodies).

Django's ``RedisCache`` builds a new client object for every operation and offers no scripts, and
even a plain ``redis.Redis`` command goes through layers of retry, instrumentation and pool
bookkeeping that cost more CPU than the round trip itself. The hot path therefore sends its
commands with ``execute`` and ``run_script`` straight on a ``redis`` connection this thread keeps
for itself (opened again after a ``fork`` or a failure), packed and parsed by ``redis`` itself.
The connection has short timeouts and a PING before a command after 30 s idle: a Redis that is
down or hung costs a request at most about a second, and callers then degrade instead of failing
(see ``warn_unavailable``). A command that fails raises ``redis.RedisError`` and drops the
connection; it is not retried (a script may have run), the next command connects afresh.

``redis_client()`` is None when the default cache is not Redis (locmem in development and in the
SQLite tests): callers then keep their plain cache or database code path.
"""

import hashlib
import logging
import os
import threading
import time
from functools import cache

import redis
from django.conf import settings
from django.core.cache import cache as default_cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import NoScriptError

REDIS_CACHE_BACKEND = "django.core.cache.backends.redis.RedisCache"
TIMEOUT_SECONDS = 0.5
WARNING_INTERVAL_SECONDS = 60.0

logger = logging.getLogger("portal")

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


class _Held(threading.local):
    """This thread's connection to the hot path's Redis, and the client it was made for."""

    connection: redis.Connection | None = None
    client: redis.Redis | None = None


_held = _Held()


def _connection(client: redis.Redis) -> redis.Connection:
    connection = _held.connection
    if connection is not None and connection.pid == os.getpid() and _held.client is client:
        return connection
    if connection is not None and connection.pid == os.getpid():
        connection.disconnect()
    pool = client.connection_pool
    # Not taken from the pool (its bookkeeping is the cost avoided here): made with its settings.
    connection = pool.connection_class(**pool.connection_kwargs)
    _held.connection, _held.client = connection, client
    return connection


def execute(*arguments):
    """Run one command on this thread's connection to the cache's Redis; its raw reply.

    Raises ``redis.RedisError`` when Redis fails or answers an error; RuntimeError without Redis.
    """
    client = redis_client()
    if client is None:
        raise RuntimeError("no Redis cache configured")
    connection = _connection(client)
    try:
        connection.send_packed_command(connection.pack_command(*arguments))
        return connection.read_response()
    except redis.ResponseError:
        raise  # the connection is fine: Redis answered
    except BaseException:
        connection.disconnect()
        raise


@cache
def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def run_script(source: str, *, keys: list, args: list):
    """Run the Lua script ``source`` with EVALSHA (one round trip; EVAL once if Redis forgot it)."""
    try:
        return execute("EVALSHA", _sha1(source), len(keys), *keys, *args)
    except NoScriptError:
        return execute("EVAL", source, len(keys), *keys, *args)


def cache_key(key: str) -> str:
    """The Redis key under which ``cached_bytes`` keeps ``key`` (the default cache's prefix and
    version applied), for a script that reads it in a round trip of its own."""
    return default_cache.make_key(key)


def cached_bytes(key: str) -> bytes | None:
    """The bytes ``cached_bytes_set`` stored under ``key`` in the default cache, or None.

    With Redis one GET on the hot connection (stored as they are, no pickling); a Redis that
    fails reads as a miss (warned). Without Redis, the default cache.
    """
    if redis_client() is None:
        return default_cache.get(key)
    try:
        return execute("GET", cache_key(key))
    except redis.RedisError as error:
        warn_unavailable(logger, "cached bodies are not read", error)
        return None


def cached_bytes_set(key: str, value: bytes, *, timeout: int) -> None:
    """Store ``value`` under ``key`` in the default cache for ``timeout`` seconds (a Redis that
    fails stores nothing, warned)."""
    if redis_client() is None:
        default_cache.set(key, value, timeout=timeout)
        return
    try:
        execute("SET", cache_key(key), value, "EX", timeout)
    except redis.RedisError as error:
        warn_unavailable(logger, "cached bodies are not stored", error)


@receiver(setting_changed)
def _forget_client(*, setting: str, **kwargs) -> None:
    if setting == "CACHES":
        redis_client.cache_clear()


def warn_unavailable(logger: logging.Logger, what: str, error: Exception) -> None:
    """Log that Redis failed, at most once a minute per ``what`` and process (no log flood)."""
    now = time.monotonic()
    with _warned_lock:
        last = _warned_at.get(what)
        if last is not None and now - last < WARNING_INTERVAL_SECONDS:
            return
        _warned_at[what] = now
    logger.warning("Redis unavailable (%s): %s: %s", what, type(error).__name__, error)
