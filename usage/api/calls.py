"""Counting API calls from the REST API: one call per request with a valid key (see ``usage.calls``)."""

import datetime as dt

from accounts.models import ApiKey
from portal.api.throttling import ApiKeyRateThrottle
from portal.hot_redis import cache_key, redis_client
from usage.calls import ThrottleHit, api_call_count


def api_call_record(*, api_key: ApiKey, now: dt.datetime) -> None:
    """Count one API call of ``api_key`` (and so of its organisation) in the UTC month of ``now``.

    Exact under any concurrency. Without Redis it is one upsert statement: call it outside
    ``transaction.atomic`` (in autocommit the row lock lasts only that statement). With Redis it
    is one Redis command, moved to the database by ``usage.calls.api_calls_flush``.
    """
    api_call_count(api_key_id=api_key.pk, organisation_id=api_key.organisation_id, now=now)


class CountingApiKeyRateThrottle(ApiKeyRateThrottle):
    """The per-key throttle of the customer API, which also counts the request as an API call.

    It runs for every request with a valid key, throttled ones included, before the handler (so
    400, 404 and 405 answers are calls too). With Redis the call and the throttle hit are one
    Lua script, one round trip; without Redis the call is the upsert and the hit a cache count.
    A view with a ``prefetch_cache_key(request)`` (a key of the default cache it will read next,
    or None) has that value read in the same script, in ``view.prefetched`` (when read at all).
    """

    def hit(self, request, view, *, counter: str, timeout: int) -> int | None:
        api_key = request.auth
        prefetch = getattr(view, "prefetch_cache_key", None)
        key = prefetch(request) if prefetch is not None else None
        counted = api_call_count(
            api_key_id=api_key.pk,
            organisation_id=api_key.organisation_id,
            now=view.now,
            throttle=ThrottleHit(counter=counter, timeout=timeout),
            read=cache_key(key) if key is not None and redis_client() is not None else None,
        )
        if counted.was_read:
            view.prefetched = counted.value
        if counted.hits is None and redis_client() is None:
            return super().hit(request, view, counter=counter, timeout=timeout)
        return counted.hits
