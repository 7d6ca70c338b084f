"""Counting API calls: one row per key and UTC month, incremented by a single upsert.

A call is counted by one ``INSERT ... ON CONFLICT (api_key_id, month) DO UPDATE`` statement, which
both SQLite and PostgreSQL execute atomically: concurrent requests never lose an increment, and
since the row is per key (not per organisation) two keys of one organisation never contend.
"""

import datetime as dt

from django.db import connection

from accounts.models import ApiKey
from usage.models import ApiCallCount
from usage.months import month_of


def _upsert_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(ApiCallCount._meta.db_table)
    column = {name: quote(ApiCallCount._meta.get_field(name).column) for name in ("api_key", "organisation")}
    month, calls = quote("month"), quote("calls")
    # Only quoted identifiers from the model's metadata are interpolated; values are parameters.
    return (
        f"INSERT INTO {table} ({column['api_key']}, {column['organisation']}, {month}, {calls}) "  # noqa: S608
        f"VALUES (%s, %s, %s, 1) "
        f"ON CONFLICT ({column['api_key']}, {month}) DO UPDATE SET {calls} = {table}.{calls} + 1"
    )


def api_call_record(*, api_key: ApiKey, now: dt.datetime) -> None:
    """Count one API call of ``api_key`` (and so of its organisation) in the UTC month of ``now``.

    Exact under any concurrency. Call it outside ``transaction.atomic``: in autocommit the row
    lock lasts only this one statement, so requests of the same key serialise for no longer than
    an increment.
    """
    month = connection.ops.adapt_datefield_value(month_of(now))
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), [api_key.pk, api_key.organisation_id, month])
