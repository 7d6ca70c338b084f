"""Counting API calls: per key and UTC month, exact under any concurrency, without a database
commit per request when Redis is the cache.

Without Redis (the locmem default) a call is one ``INSERT ... ON CONFLICT (api_key_id, month)
DO UPDATE SET calls = calls + 1`` in autocommit: atomic on SQLite and PostgreSQL.

With Redis, a call is one atomic Redis command before the response (a Lua script: HINCRBY on the
organisation's pending hash ``apicalls:pending:<organisation pk>``, field ``<key pk>:<month>``, and
SADD of the organisation to ``apicalls:dirty``; on the API the same command also counts the hit of
the key's throttle window, so a request makes one Redis round trip). ``api_calls_flush`` moves the counts into
``ApiCallCount``: every few seconds (the ``usage.tasks.flush_api_calls`` beat task) and before
every read of the counts (``usage.selectors``), so reads are exact and include the current
request. A flush is crash-safe and applies each count exactly once:

1. one Lua script moves every pending hash into a new in-flight hash ``apicalls:inflight:<token>``
   (recorded in the set ``apicalls:inflights``) and returns every in-flight token, older ones
   left by a crashed flush included;
2. each in-flight hash is applied in one database transaction that first inserts a marker row
   ``TaskLock(name="apicalls-flushed:<token>")``, then upserts ``calls = calls + n``; a second
   flusher of the same token blocks on the marker's primary key until the first commits, then
   fails on it and knows the counts are in; a crash before the commit leaves no marker, and the
   next flush applies the token again;
3. only after the commit is the in-flight hash deleted; markers are kept ten minutes (and while
   their token is still in flight), then removed by the beat task.

The all-time total (``GET /api/v1/usage``, the API's hot read) does not flush: ``api_calls_total``
reads the organisation's pending and in-flight counts in one Lua script, then in one SQL
statement (one snapshot) the table's sum and which of those in-flight batches have a committed
marker; it adds the pending counts and the batches not committed yet. A batch committed before
the statement is in the sum and marked; one committed after is in neither; a batch deleted from
Redis before the script ran was committed before it. So the total is exact without a write.

When a Redis command fails while counting, the call is counted by the synchronous upsert instead
(exact, just slower); when a flush cannot reach Redis, reads show what is in the database.
"""

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import redis
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import ApiKey
from portal.hot_redis import redis_client, run_script, warn_unavailable

from .models import ApiCallCount, TaskLock
from .months import month_of

logger = logging.getLogger(__name__)

PREFIX = "apicalls:"
DIRTY = f"{PREFIX}dirty"
INFLIGHTS = f"{PREFIX}inflights"
MARKER_PREFIX = "apicalls-flushed:"
# A marker must outlive any read or flush that saw its batch in flight (milliseconds to seconds).
MARKER_TTL = dt.timedelta(minutes=10)

# KEYS: the organisation's pending hash, the dirty set[, a throttle counter[, a key to read]].
# ARGV: field, organisation pk[, the counter's expiry]. Returns the throttle counter's hits (0
# without one), or {hits, the value read} with a key to read.
_RECORD = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[2])
local hits = 0
if #KEYS >= 3 then
  hits = redis.call('INCR', KEYS[3])
  if hits == 1 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
end
if #KEYS >= 4 then return {hits, redis.call('GET', KEYS[4])} end
return hits
"""

# KEYS: dirty set, in-flight tokens set. ARGV: new token, key prefix. Returns every in-flight token.
_MOVE = """
local organisations = redis.call('SMEMBERS', KEYS[1])
local inflight = ARGV[2] .. 'inflight:' .. ARGV[1]
local moved = 0
for _, organisation in ipairs(organisations) do
  local pending = ARGV[2] .. 'pending:' .. organisation
  local fields = redis.call('HGETALL', pending)
  for i = 1, #fields, 2 do
    redis.call('HINCRBY', inflight, organisation .. ':' .. fields[i], fields[i + 1])
    moved = moved + 1
  end
  redis.call('DEL', pending)
end
redis.call('DEL', KEYS[1])
if moved > 0 then redis.call('SADD', KEYS[2], ARGV[1]) end
return redis.call('SMEMBERS', KEYS[2])
"""


# KEYS: the organisation's pending hash, in-flight tokens set. ARGV: key prefix, organisation pk.
# Returns {pending fields and counts, token, {its fields and counts of this organisation}, ...}.
_UNFLUSHED = """
local result = {redis.call('HGETALL', KEYS[1])}
local mine = ARGV[2] .. ':'
for _, token in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local fields = redis.call('HGETALL', ARGV[1] .. 'inflight:' .. token)
  local found = {}
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, #mine) == mine then
      table.insert(found, string.sub(fields[i], #mine + 1))
      table.insert(found, fields[i + 1])
    end
  end
  if #found > 0 then
    table.insert(result, token)
    table.insert(result, found)
  end
end
return result
"""


def _upsert_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(ApiCallCount._meta.db_table)
    column = {name: quote(ApiCallCount._meta.get_field(name).column) for name in ("api_key", "organisation")}
    month, calls = quote("month"), quote("calls")
    total = f"{table}.{calls} + excluded.{calls}"
    # Only quoted identifiers from the model's metadata are interpolated; values are parameters.
    return (
        f"INSERT INTO {table} ({column['api_key']}, {column['organisation']}, {month}, {calls}) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT ({column['api_key']}, {month}) DO UPDATE SET {calls} = {total}"
    )


def api_call_count_upsert(*, api_key_id: int, organisation_id: int, month: dt.date, calls: int = 1) -> None:
    """Add ``calls`` to the key's count of ``month`` with one atomic upsert statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            _upsert_sql(), [api_key_id, organisation_id, connection.ops.adapt_datefield_value(month), calls]
        )


@dataclass(frozen=True)
class ThrottleHit:
    """A hit of a rate limit's window counter, taken in the same Redis round trip as the call's count:
    ``counter`` is its key, ``timeout`` its expiry in seconds from the first hit."""

    counter: str
    timeout: int


@dataclass(frozen=True)
class Counted:
    """What ``api_call_count`` did besides counting the call: ``hits`` of the throttle counter
    (None when not counted there), and the value under the key to read, if ``was_read``."""

    hits: int | None = None
    was_read: bool = False
    value: bytes | None = None


def api_call_count(
    *,
    api_key_id: int,
    organisation_id: int,
    now: dt.datetime,
    throttle: ThrottleHit | None = None,
    read: str | None = None,
) -> Counted:
    """Count one API call of the key in the UTC month of ``now`` (see the module's description).

    With ``throttle``, also count one hit of that window counter in the same Redis command (one
    round trip for all), and with ``read`` (a Redis key; only with ``throttle``) also get its
    value, which the request needs next (a cached body). Without Redis, or when Redis fails, the
    call is counted by the upsert and neither is done (``hits`` None, ``was_read`` False): the
    caller then counts the hit itself or lets the request through, and reads the value itself.
    """
    month = month_of(now)
    if redis_client() is not None:
        keys = [f"{PREFIX}pending:{organisation_id}", DIRTY]
        args = [f"{api_key_id}:{month}", organisation_id]
        if throttle is not None:
            keys.append(throttle.counter)
            args.append(throttle.timeout)
            if read is not None:
                keys.append(read)
        try:
            reply = run_script(_RECORD, keys=keys, args=args)
        except redis.RedisError as error:
            warn_unavailable(logger, "API calls are counted in the database", error)
        else:
            if throttle is None:
                return Counted()
            if len(keys) == 4:
                return Counted(hits=int(reply[0]), was_read=True, value=reply[1])
            return Counted(hits=int(reply))
    api_call_count_upsert(api_key_id=api_key_id, organisation_id=organisation_id, month=month)
    return Counted()


def api_calls_total(*, organisation_id: int) -> int:
    """All API calls of the organisation, exact, those still in Redis included (no write)."""
    client = redis_client()
    counted = ApiCallCount.objects.filter(organisation_id=organisation_id)
    if client is None:
        return counted.aggregate(total=Sum("calls"))["total"] or 0
    try:
        found = run_script(
            _UNFLUSHED, keys=[f"{PREFIX}pending:{organisation_id}", INFLIGHTS], args=[PREFIX, organisation_id]
        )
    except redis.RedisError as error:
        warn_unavailable(logger, "API call counts read from the database only", error)
        return counted.aggregate(total=Sum("calls"))["total"] or 0
    pending = sum(int(calls) for calls in found[0][1::2])
    batches = {
        found[index].decode(): sum(int(c) for c in found[index + 1][1::2])
        for index in range(1, len(found), 2)
    }
    quote = connection.ops.quote_name
    calls_table, marker_table = quote(ApiCallCount._meta.db_table), quote(TaskLock._meta.db_table)
    organisation_column = quote(ApiCallCount._meta.get_field("organisation").column)
    marker_column = quote(TaskLock._meta.pk.column)
    tokens = list(batches)
    # Only quoted identifiers from the models' metadata are interpolated; values are parameters.
    marked = f", (SELECT COUNT(*) FROM {marker_table} WHERE {marker_column} = %s)"  # noqa: S608
    total = f"(SELECT COALESCE(SUM({quote('calls')}), 0) FROM {calls_table} WHERE {organisation_column} = %s)"  # noqa: S608
    # One statement, so one snapshot: the sum and the markers agree (see the module's description).
    sql = f"SELECT {total}{marked * len(tokens)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [organisation_id, *(MARKER_PREFIX + token for token in tokens)])
        row = cursor.fetchone()
    in_table, committed = int(row[0]), row[1:]
    return (
        in_table
        + pending
        + sum(batches[token] for token, done in zip(tokens, committed, strict=True) if not done)
    )


def api_calls_flush(*, clean_markers: bool = False) -> int:
    """Move every count still in Redis into ``ApiCallCount``; the number of in-flight batches applied.

    Once it returns, every call counted before it started is in the database. Does nothing
    without Redis, and only warns when Redis does not answer.
    """
    client = redis_client()
    if client is None:
        return 0
    try:
        tokens = [
            token.decode()
            for token in run_script(_MOVE, keys=[DIRTY, INFLIGHTS], args=[uuid.uuid4().hex, PREFIX])
        ]
        for token in tokens:
            _apply(client, token)
    except redis.RedisError as error:
        warn_unavailable(logger, "API call counts not flushed", error)
        return 0
    if clean_markers:
        TaskLock.objects.filter(name__startswith=MARKER_PREFIX, locked_until__lt=timezone.now()).exclude(
            name__in=[MARKER_PREFIX + token for token in tokens]
        ).delete()
    return len(tokens)


def _marker_insert(token: str) -> bool:
    """Insert the batch's marker; False when another flush has committed it (the batch is in).

    ``ON CONFLICT DO NOTHING`` waits for a concurrent uncommitted insert of the same name and
    then does nothing if it committed, or inserts if it rolled back.
    """
    quote = connection.ops.quote_name
    meta = TaskLock._meta
    columns = ", ".join(quote(meta.get_field(name).column) for name in ("name", "locked_until", "owner"))
    sql = (  # Only quoted identifiers from the model's metadata; values are parameters.
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT ({quote(meta.pk.column)}) DO NOTHING"
    )
    until = connection.ops.adapt_datetimefield_value(timezone.now() + MARKER_TTL)
    with connection.cursor() as cursor:
        cursor.execute(sql, [MARKER_PREFIX + token, until, "api_calls_flush"])
        return cursor.rowcount == 1


def _apply(client, token: str) -> None:
    """Apply one in-flight batch exactly once, then forget it in Redis (see the module's steps 2-3)."""
    inflight = f"{PREFIX}inflight:{token}"
    with transaction.atomic():
        if _marker_insert(token):
            rows = []
            for field, calls in client.hgetall(inflight).items():
                organisation_id, api_key_id, month = field.decode().split(":")
                rows.append((int(api_key_id), int(organisation_id), dt.date.fromisoformat(month), int(calls)))
            if rows:
                # A key deleted meanwhile takes its counts with it (as the cascade would have).
                existing = set(
                    ApiKey.objects.filter(pk__in={row[0] for row in rows}).values_list("pk", flat=True)
                )
                params = [
                    [api_key_id, organisation_id, connection.ops.adapt_datefield_value(month), calls]
                    for api_key_id, organisation_id, month, calls in rows
                    if api_key_id in existing
                ]
                if params:
                    with connection.cursor() as cursor:
                        cursor.executemany(_upsert_sql(), params)
    pipe = client.pipeline(transaction=True)
    pipe.delete(inflight)
    pipe.srem(INFLIGHTS, token)
    pipe.execute()
