"""Counting API calls from the REST API: one call per request with a valid key (see ``usage.calls``)."""

import datetime as dt

from accounts.models import ApiKey
from portal.api.throttling import ApiKeyRateThrottle
from portal.hot_redis import redis_client
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
    """

    def hit(self, request, view, *, counter: str, timeout: int) -> int | None:
        api_key = request.auth
        hits = api_call_count(
            api_key_id=api_key.pk,
            organisation_id=api_key.organisation_id,
            now=view.now,
            throttle=ThrottleHit(counter=counter, timeout=timeout),
        )
        if hits is None and redis_client() is None:
            return super().hit(request, view, counter=counter, timeout=timeout)
        return hits
