"""Leases in the database: an overlap guard for tasks that works on any backend."""

import datetime as dt
import uuid
from contextlib import contextmanager

from django.db import IntegrityError, transaction
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
