"""Celery tasks of the webhooks: one delivery try, the sweep of lost deliveries, the alert email.

Tasks take ids, call one function, and own only the retry policy: ``deliver`` schedules the next
try on ``WEBHOOK_RETRY_SCHEDULE`` with ``apply_async(countdown=…)``. ``deliver_batch`` makes the
first tries of deliveries queued together (the events of one refresh) in one go.
"""

import datetime as dt
import logging

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError
from django.utils import timezone

from .delivery import deliveries_attempt, delivery_attempt
from .models import Delivery
from .notifications import event_email_send

logger = logging.getLogger(__name__)

_RETRYABLE = (OperationalError, InterfaceError, DatabaseError)
SWEEP_GRACE = dt.timedelta(minutes=2)
SWEEP_BATCH = 500


@shared_task(
    name="webhooks.tasks.deliver",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=_RETRYABLE,
    retry_backoff=5,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def deliver(delivery_id: int, manual: bool = False) -> None:
    """Make one try of a delivery and schedule the next one when it failed."""
    outcome = delivery_attempt(delivery_id=delivery_id, manual=manual)
    if outcome.retry_in is not None:
        deliver.apply_async(args=[delivery_id], countdown=outcome.retry_in)


@shared_task(
    name="webhooks.tasks.deliver_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=_RETRYABLE,
    retry_backoff=5,
    max_retries=5,
    soft_time_limit=600,
    time_limit=660,
)
def deliver_batch(delivery_ids: list[int]) -> None:
    """Make the first try of several deliveries queued together; each that failed gets its own
    ``deliver`` task for its next try."""
    for delivery_id, outcome in deliveries_attempt(delivery_ids=delivery_ids).items():
        if outcome.retry_in is not None:
            deliver.apply_async(args=[delivery_id], countdown=outcome.retry_in)


@shared_task(name="webhooks.tasks.deliveries_sweep", acks_late=True, ignore_result=True)
def deliveries_sweep() -> int:
    """Enqueue the pending deliveries that are overdue (their message was never sent or lost)."""
    overdue = list(
        Delivery.objects.filter(
            state=Delivery.State.PENDING, next_attempt_at__lt=timezone.now() - SWEEP_GRACE
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for delivery_id in overdue:
        deliver.delay(delivery_id)
    if overdue:
        logger.info("webhooks: sweep re-enqueued %d overdue deliveries", len(overdue))
    return len(overdue)


@shared_task(
    name="webhooks.tasks.event_email",
    acks_late=True,
    ignore_result=True,
    autoretry_for=_RETRYABLE,
    max_retries=5,
)
def event_email(event_id: int) -> int:
    """Email a usage event to the owners when an endpoint of theirs asks for it."""
    return event_email_send(event_id=event_id)
