"""Celery tasks: the nightly recompute, fanned out one task per organisation.

Tasks take ids, call one service, and own only retry and overlap policy.
"""

import datetime as dt
import logging

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from accounts.models import Organisation

from .calls import api_calls_flush
from .engine.locks import task_lock
from .engine.recompute import usage_recompute

logger = logging.getLogger(__name__)

DISPATCH_LEASE = dt.timedelta(minutes=10)
ORGANISATION_LEASE = dt.timedelta(minutes=30)
_RETRYABLE = (OperationalError, InterfaceError, DatabaseError)


@shared_task(
    name="usage.tasks.recompute_usage",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=300,
    time_limit=360,
)
def recompute_usage() -> int:
    """Dispatch one recompute task per organisation; a run while another dispatches does nothing."""
    with task_lock(name="recompute_usage:dispatch", ttl=DISPATCH_LEASE) as claimed:
        if not claimed:
            logger.info("recompute_usage: another dispatch is running; skipped")
            return 0
        organisation_ids = list(Organisation.objects.order_by("pk").values_list("pk", flat=True))
        for organisation_id in organisation_ids:
            recompute_organisation_usage.delay(organisation_id)
    logger.info("recompute_usage: dispatched %d organisation task(s)", len(organisation_ids))
    return len(organisation_ids)


@shared_task(
    name="usage.tasks.recompute_organisation_usage",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=_RETRYABLE,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=6,
    soft_time_limit=1200,
    time_limit=1500,
)
def recompute_organisation_usage(organisation_id: int) -> int:
    """Reconcile one organisation's usage with its raw jobs; idempotent, safe to run twice."""
    with task_lock(name=f"recompute_usage:org:{organisation_id}", ttl=ORGANISATION_LEASE) as claimed:
        if not claimed:
            logger.info(
                "recompute_usage: organisation %s is being recomputed already; skipped", organisation_id
            )
            return 0
        result = usage_recompute(organisation_ids=[organisation_id])
    logger.info(
        "recompute_usage: organisation %s: %d month(s), %d aggregate row(s) corrected, "
        "%d job tier(s) and %d free flag(s) fixed",
        organisation_id,
        result.months,
        result.rows_corrected,
        result.jobs_retiered,
        result.free_flags_fixed,
    )
    return result.rows_corrected


@shared_task(name="usage.tasks.flush_api_calls", ignore_result=True, soft_time_limit=60, time_limit=90)
def flush_api_calls() -> int:
    """Move the API call counts kept in Redis into ``ApiCallCount`` (every few seconds, by beat).

    Safe to run concurrently with another flush or a read's flush, and after a crash of any of
    them (see ``usage.calls``); does nothing without Redis.
    """
    return api_calls_flush(clean_markers=True)
