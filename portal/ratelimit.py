"""Fixed-window counters in the cache, and the client address the limits are keyed by.

Shared by the login lockout (django-axes) and the password-reset mail limit, so both agree with
the API's throttling on who the client is.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address: the socket's, or with ``API_NUM_PROXIES`` trusted proxies in front,
    the ``X-Forwarded-For`` entry the nearest of them added (DRF's rule, so it cannot be forged)."""
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        entries = [entry.strip() for entry in forwarded.split(",")]
        return entries[-min(proxies, len(entries))]
    return request.META.get("REMOTE_ADDR", "")


def limit_hit(*, scope: str, identity: str, limit: int, window_seconds: int) -> bool:
    """Count one event of ``identity`` in ``scope``; True once more than ``limit`` happened in
    the current window. The identity is hashed, so no address or email is a cache key."""
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    key = f"ratelimit:{scope}:{digest}"
    if cache.add(key, 1, timeout=window_seconds):
        return limit < 1
    try:
        count = cache.incr(key)
    except ValueError:
        # The window ended between add() and incr(): this event opens the next one.
        cache.add(key, 1, timeout=window_seconds)
        count = 1
    return count > limit
