"""Rate limits of the REST API, counted in the default cache (Redis in production).

Both limits count hits in fixed windows (``600/min``: at most 600 hits from :00 to :59 of each
minute) with an atomic increment, so a count stays exact when many workers share the cache.

With Redis, a count is one round trip: a small Lua script does INCR and sets the window's expiry,
through the pooled client of ``portal.hot_redis``. When Redis fails, the limits degrade open:
the request is allowed and a warning is logged (at most once a minute per process); they work
again as soon as Redis answers. Without Redis (locmem), the cache's ``incr``/``add`` are used.
"""

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import BaseThrottle

from portal.hot_redis import redis_client, run_script, warn_unavailable

logger = logging.getLogger("portal.api")

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    """``hits`` allowed per window of ``seconds``, parsed from DRF's ``N/period`` notation."""

    hits: int
    seconds: int

    @classmethod
    @lru_cache(maxsize=16)
    def parse(cls, text: str, *, setting: str) -> "Rate":
        """Parse ``600/min``, ``10/s``, ``1000/hour``, ``5000/day``; the period's first letter counts."""
        try:
            hits, period = text.split("/")
            rate = cls(hits=int(hits), seconds=_PERIODS[period.strip()[:1].lower()])
        except (ValueError, KeyError, AttributeError):
            raise ImproperlyConfigured(f"{setting} must look like '600/min', got {text!r}") from None
        if rate.hits < 1:
            raise ImproperlyConfigured(f"{setting} must allow at least one request, got {text!r}")
        return rate

    def window(self, now: float) -> tuple[int, float]:
        """The index of the window holding ``now``, and the seconds left until it ends."""
        index = int(now // self.seconds)
        return index, (index + 1) * self.seconds - now


_INCR_EXPIRE = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return hits
"""


def _incr(key: str, *, timeout: int) -> int | None:
    """Count one hit under ``key`` (expiring ``timeout`` s after the first); None if Redis failed."""
    if redis_client() is None:
        try:
            return cache.incr(key)
        except ValueError:
            if cache.add(key, 1, timeout=timeout):
                return 1
            return cache.incr(key)
    try:
        return int(run_script(_INCR_EXPIRE, keys=[key], args=[timeout]))
    except redis.RedisError as error:
        warn_unavailable(logger, "API throttling is off", error)
        return None


def _retry_after(seconds_left: float) -> int:
    return max(1, math.ceil(seconds_left))


class ApiKeyRateThrottle(BaseThrottle):
    """At most ``API_THROTTLE_RATE`` requests per API key (``request.auth``) and window.

    Every request counts, throttled ones included; ``wait()`` is the time until the window ends,
    which DRF sends as ``Retry-After``. Requests without a key are not throttled here.
    """

    setting = "API_THROTTLE_RATE"
    scope = "key"  # the counters' namespace in the cache: one per kind of key

    def __init__(self) -> None:
        self.rate = Rate.parse(getattr(settings, self.setting), setting=self.setting)
        self._wait: int | None = None

    def allow_request(self, request, view) -> bool:
        api_key = request.auth
        if api_key is None:
            return True
        index, seconds_left = self.rate.window(time.time())
        counter = f"throttle:{self.scope}:{api_key.pk}:{self.rate.seconds}:{index}"
        hits = self.hit(request, view, counter=counter, timeout=self.rate.seconds + 5)
        if hits is None or hits <= self.rate.hits:
            return True
        self._wait = _retry_after(seconds_left)
        return False

    def hit(self, request, view, *, counter: str, timeout: int) -> int | None:
        """Count one hit under ``counter`` (expiring ``timeout`` s after the first); its hits so far,
        None when they could not be counted (the request is then let through). A subclass may
        count the hit together with other work of the request (``usage.api.calls``)."""
        return _incr(counter, timeout=timeout)

    def wait(self) -> int | None:
        return self._wait


class ServiceKeyRateThrottle(ApiKeyRateThrottle):
    """At most ``API_INGEST_THROTTLE_RATE`` requests per service key and window, counted apart
    from the API keys' limits."""

    setting = "API_INGEST_THROTTLE_RATE"
    scope = "servicekey"


class AuthFailureLimit:
    """At most ``API_AUTH_FAILURE_RATE`` failed authentications (401s) per client address and window.

    Only failures are limited: a request with a valid key is never refused here, whatever the
    address did before (it has its own per-key throttle). ``record`` counts a failure and tells
    whether the address is over its budget, and for how long, so that failure is answered 429
    instead of 401. ``ident`` is the client address as DRF's ``BaseThrottle.get_ident`` finds it
    (see ``NUM_PROXIES``).
    """

    def __init__(self) -> None:
        self.rate = Rate.parse(settings.API_AUTH_FAILURE_RATE, setting="API_AUTH_FAILURE_RATE")

    def _key(self, ident: str, index: int) -> str:
        return f"throttle:authfail:{ident}:{self.rate.seconds}:{index}"

    def record(self, ident: str) -> int | None:
        """Count one failed authentication of ``ident``; the seconds it must now wait, or None."""
        index, seconds_left = self.rate.window(time.time())
        failures = _incr(self._key(ident, index), timeout=self.rate.seconds + 5)
        if failures is None or failures <= self.rate.hits:
            return None
        return _retry_after(seconds_left)

    @staticmethod
    def ident(request) -> str:
        return BaseThrottle().get_ident(request) or "unknown"
