"""Readiness checks of the portal's dependencies, for ``/readyz`` (``portal/views.py``).

Each check answers ``True`` when its dependency works and ``False`` otherwise (logging why);
none reads or returns any data of the portal.
"""

import contextlib
import logging
import os
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections, transaction
from kombu import Connection

logger = logging.getLogger("portal.health")

# Seconds a check may take before its dependency counts as unavailable.
CHECK_TIMEOUT = 2


def database_check() -> bool:
    """``SELECT 1`` on the default database, with a short statement timeout on PostgreSQL."""
    try:
        # In a transaction, so that the timeout (SET LOCAL) ends with it and never outlives the
        # check on a kept-alive connection.
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"SET LOCAL statement_timeout = {CHECK_TIMEOUT * 1000}")
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("Readiness: the database is unavailable", exc_info=True)
        # A broken connection is dropped, so that the next request opens a new one.
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        return False
    return True


def cache_check() -> bool:
    """Set and read back a random key of the default cache."""
    key = f"portal:readyz:{uuid.uuid4().hex}"
    value = uuid.uuid4().hex
    try:
        cache.set(key, value, timeout=CHECK_TIMEOUT * 5)
        answered = cache.get(key)
        cache.delete(key)
    except Exception:
        logger.warning("Readiness: the cache is unavailable", exc_info=True)
        return False
    if answered != value:
        logger.warning("Readiness: the cache did not keep a value it was given")
        return False
    return True


def broker_check() -> bool:
    """Connect to the Celery broker; the embedded filesystem broker needs a writable folder."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
        folder = options.get("data_folder_in")
        # Created as portal.celery would when the app is first configured.
        with contextlib.suppress(OSError, TypeError):
            os.makedirs(folder, exist_ok=True)
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
            return True
        logger.warning("Readiness: the filesystem broker's folder %s is missing or not writable", folder)
        return False
    try:
        with Connection(url, connect_timeout=CHECK_TIMEOUT) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT)
    except Exception:
        logger.warning("Readiness: the broker is unavailable", exc_info=True)
        return False
    return True


CHECKS = {"database": database_check, "cache": cache_check, "broker": broker_check}


def readiness() -> dict[str, str]:
    """``{"database": "ok", "cache": "ok", "broker": "ok"}``, each ``"unavailable"`` when its
    check fails; with ``"failed"`` naming the first dependency that failed, if one did."""
    report = {name: "ok" if check() else "unavailable" for name, check in CHECKS.items()}
    failed = [name for name, state in report.items() if state != "ok"]
    if failed:
        report["failed"] = failed[0]
    return report


# A database that is down (or a connection it dropped) while a request is served.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
DATABASE_UNAVAILABLE_DETAIL = "The database is unavailable; try again shortly."
RETRY_AFTER_SECONDS = 5


def database_connections_reset() -> None:
    """Drop the connections that a failure left unusable, so the next request reconnects (and
    the portal recovers by itself once the database is back). A connection inside a transaction
    is left to the code that opened it."""
    for wrapper in connections.all(initialized_only=True):
        if not wrapper.in_atomic_block:
            wrapper.close_if_unusable_or_obsolete()
