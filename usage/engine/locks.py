"""Locks of the engine: leases that keep periodic work from overlapping (any backend; on
PostgreSQL a lease dies with its holder's connection), and the advisory lock that orders the
writers of an organisation's jobs (PostgreSQL)."""

import datetime as dt
import uuid
import zlib
from collections.abc import Iterable
from contextlib import contextmanager

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from portal.db import prepared_cursor
from usage.models import TaskLock

# The first key of the session advisory locks that tie a lease to its holder's connection.
_LEASE_LOCK = 0x4C454153  # "LEAS"
# Tokens of the leases this process holds, to tell its own (re-entrant) advisory lock apart.
_held: set[str] = set()


def _lease_key(name: str) -> int:
    """The lease's advisory lock key: a signed 32-bit CRC of its name (a shared key only
    serialises more)."""
    return (zlib.crc32(name.encode()) + 2**31) % 2**32 - 2**31


def _session_lock(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LEASE_LOCK, _lease_key(name)])
        return bool(cursor.fetchone()[0])


def _session_unlock(name: str) -> None:
    with connection.cursor() as cursor:
        # False (and a server warning) when this connection no longer holds it: it was replaced.
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LEASE_LOCK, _lease_key(name)])


def task_lock_claim(*, name: str, ttl: dt.timedelta) -> str | None:
    """Claim the lease ``name`` for ``ttl``; returns an owner token, or None if someone holds it.

    On PostgreSQL a holder also holds a session advisory lock for the lease, which the server
    releases when the holder's connection ends: a claimant that gets that lock while the lease
    row still says "held" knows its holder died (a worker killed with SIGKILL) and takes the
    lease over at once, rather than waiting for it to expire. On SQLite a lease left by a dead
    holder expires after ``ttl``.
    """
    postgresql = connection.vendor == "postgresql"
    if postgresql and not _session_lock(name):
        return None  # a live holder (or a claimant taking it over) has it
    token = _claim_row(name=name, ttl=ttl)
    if token is None and postgresql:
        holder = TaskLock.objects.filter(name=name).values_list("owner", flat=True).first()
        if holder is not None and holder not in _held:
            # Held by a connection that is gone: the holder died. Take the lease over.
            now = timezone.now()
            token = uuid.uuid4().hex
            if not TaskLock.objects.filter(name=name, owner=holder).update(
                locked_until=now + ttl, owner=token
            ):
                token = None
    if token is None:
        if postgresql:
            _session_unlock(name)
        return None
    _held.add(token)
    return token


def _claim_row(*, name: str, ttl: dt.timedelta) -> str | None:
    """The lease's row: take it if free or expired (a conditional update, any backend)."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = TaskLock.objects.filter(name=name, locked_until__lte=now).update(
        locked_until=now + ttl, owner=token
    )
    if claimed:
        return token
    try:
        with transaction.atomic():
            TaskLock.objects.create(name=name, locked_until=now + ttl, owner=token)
    except IntegrityError:
        return None
    return token


def task_lock_release(*, name: str, token: str) -> None:
    """Give the lease back, if we still hold it."""
    TaskLock.objects.filter(name=name, owner=token).update(locked_until=timezone.now())
    if token in _held:
        _held.discard(token)
        if connection.vendor == "postgresql":
            _session_unlock(name)


@contextmanager
def task_lock(*, name: str, ttl: dt.timedelta):
    """Yield True while holding the lease, or False (without waiting) when it is taken."""
    token = task_lock_claim(name=name, ttl=ttl)
    try:
        yield token is not None
    finally:
        if token is not None:
            task_lock_release(name=name, token=token)


# The first key of the advisory locks of ``job_writes_lock`` (the second is the organisation's).
_JOB_WRITES_LOCK = 0x4A4F4253  # "JOBS"


def job_writes_lock(*, organisation_ids: Iterable[int]) -> None:
    """Hold, until the current transaction ends, the right to write these organisations' jobs.

    Two transactions that write the same jobs in different orders would each wait for a row the
    other holds (a deadlock, on PostgreSQL); taking these locks first, in one fixed order, makes
    the second writer wait for the first instead. The job writes of ``usage.services`` and the
    refresh take it inside their transactions, before any row lock. No-op on SQLite, which has
    one writer at a time.
    """
    if connection.vendor != "postgresql":
        return
    # One int4 key per organisation (ids past 2^31 wrap; a shared key only serialises more).
    keys = sorted({(pk + 2**31) % 2**32 - 2**31 for pk in organisation_ids})
    if keys:
        with prepared_cursor() as cursor:
            # unnest yields the keys in array order, so they are locked in that order.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, key) FROM unnest(%s::int4[]) AS key",
                [_JOB_WRITES_LOCK, keys],
            )
