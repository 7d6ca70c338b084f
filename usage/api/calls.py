"""Counting API calls from the REST API: one call per request with a valid key (see ``usage.calls``)."""

import datetime as dt

from accounts.models import ApiKey
from usage.calls import api_call_count


def api_call_record(*, api_key: ApiKey, now: dt.datetime) -> None:
    """Count one API call of ``api_key`` (and so of its organisation) in the UTC month of ``now``.

    Exact under any concurrency. Without Redis it is one upsert statement: call it outside
    ``transaction.atomic`` (in autocommit the row lock lasts only that statement). With Redis it
    is one Redis command, moved to the database by ``usage.calls.api_calls_flush``.
    """
    api_call_count(api_key_id=api_key.pk, organisation_id=api_key.organisation_id, now=now)
