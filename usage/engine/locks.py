"""Locks of the engine: leases that keep periodic work from overlapping (any backend), and the
advisory lock that orders the writers of an organisation's jobs (PostgreSQL)."""

import datetime as dt
import uuid
from collections.abc import Iterable
from contextlib import contextmanager

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from usage.models import TaskLock


def task_lock_claim(*, name: str, ttl: dt.timedelta) -> str | None:
    """Claim the lease ``name`` for ``ttl``; returns an owner token, or None if someone holds it."""
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
        with connection.cursor() as cursor:
            # unnest yields the keys in array order, so they are locked in that order.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, key) FROM unnest(%s::int4[]) AS key",
                [_JOB_WRITES_LOCK, keys],
            )
