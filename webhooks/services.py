"""Writes of the webhooks app: endpoints, spend thresholds, events (the outbox) and deliveries.

An event is recorded in the transaction of the change that caused it, with one ``Delivery`` per
active endpoint subscribed to its type; the deliveries are handed to Celery only once that
transaction commits, so a request or an import never waits for a customer's server.
"""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organisation
from portal.errors import DomainError
from portal.events import DomainEvent

from . import signing
from .models import (
    SUBSCRIBABLE_EVENT_TYPES,
    USAGE_EVENT_TYPES,
    Delivery,
    Event,
    EventType,
    SpendThreshold,
    WebhookEndpoint,
)
from .ssrf import url_vet

logger = logging.getLogger(__name__)


class InvalidEndpoint(DomainError):
    """An endpoint's URL or event types that cannot be saved."""


class InvalidThreshold(DomainError):
    """A spend threshold that is not a positive amount, or that already exists."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="amount")


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint and its secret, returned once at creation and rotation."""

    endpoint: WebhookEndpoint
    secret: str


def _event_types_clean(event_types) -> list[str]:
    chosen = list(dict.fromkeys(event_types or []))
    unknown = [value for value in chosen if value not in SUBSCRIBABLE_EVENT_TYPES]
    if unknown:
        raise InvalidEndpoint(f"Unknown event type(s): {', '.join(unknown)}.", field="event_types")
    if not chosen:
        raise InvalidEndpoint("Choose at least one event type.", field="event_types")
    return [value for value in SUBSCRIBABLE_EVENT_TYPES if value in chosen]


def _url_clean(url: str) -> str:
    url = (url or "").strip()
    url_vet(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)  # raises UnsafeUrl
    return url


def webhook_endpoint_create(
    *,
    organisation: Organisation,
    url: str,
    event_types: list[str] | None = None,
    description: str = "",
    email_alerts: bool = False,
) -> EndpointWithSecret:
    """Create an endpoint (all event types when none are given); its secret is returned once."""
    endpoint = WebhookEndpoint(
        organisation=organisation,
        url=_url_clean(url),
        event_types=_event_types_clean(SUBSCRIBABLE_EVENT_TYPES if event_types is None else event_types),
        description=description.strip(),
        email_alerts=email_alerts,
        secret=signing.secret_generate(),
    )
    endpoint.full_clean(exclude=["url"])  # the URL was judged by the SSRF guard (http allowed in dev)
    endpoint.save()
    return EndpointWithSecret(endpoint=endpoint, secret=endpoint.secret)


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, url: str, event_types: list[str], description: str, email_alerts: bool
) -> WebhookEndpoint:
    """Change an endpoint's URL, event types, description and email alerts."""
    endpoint.url = _url_clean(url)
    endpoint.event_types = _event_types_clean(event_types)
    endpoint.description = description.strip()
    endpoint.email_alerts = email_alerts
    endpoint.full_clean(exclude=["url"])
    endpoint.save(update_fields=["url", "event_types", "description", "email_alerts"])
    return endpoint


def webhook_endpoint_set_active(*, endpoint: WebhookEndpoint, is_active: bool, reason: str = "") -> bool:
    """Enable or disable an endpoint; returns whether it changed. Enabling forgets past failures;
    disabling stops its pending deliveries at their next try."""
    fields = (
        {"is_active": True, "disabled_at": None, "disabled_reason": "", "failing_since": None}
        if is_active
        else {"is_active": False, "disabled_at": timezone.now(), "disabled_reason": reason[:200]}
    )
    changed = bool(
        WebhookEndpoint.objects.filter(pk=endpoint.pk).exclude(is_active=is_active).update(**fields)
    )
    if changed:
        for name, value in fields.items():
            setattr(endpoint, name, value)
    return changed


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> EndpointWithSecret:
    """Give the endpoint a new secret (returned once); the next sends are signed with it."""
    endpoint.secret = signing.secret_generate()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=endpoint.secret)
    return EndpointWithSecret(endpoint=endpoint, secret=endpoint.secret)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


def spend_threshold_add(*, organisation: Organisation, amount) -> SpendThreshold:
    """Watch for a month's final cost reaching ``amount`` (> 0, two decimal places)."""
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise InvalidThreshold("Enter an amount such as 250 or 99.50.") from None
    if value <= 0:
        raise InvalidThreshold("A threshold is an amount above 0.")
    threshold = SpendThreshold(organisation=organisation, amount=value)
    try:
        threshold.full_clean(validate_unique=False)
        with transaction.atomic():
            threshold.save()
            # A month already past the amount crosses it now, not at the next job.
            Organisation.objects.select_for_update().filter(pk=organisation.pk).exists()
            from .detection import usage_events_detect  # (detection records through this module)

            usage_events_detect({organisation.pk: None})
    except IntegrityError:
        raise InvalidThreshold("This threshold is already set.") from None
    except Exception as error:
        if hasattr(error, "messages"):
            raise InvalidThreshold(" ".join(error.messages)) from None
        raise
    return threshold


def spend_threshold_remove(*, organisation: Organisation, threshold_id: int) -> bool:
    deleted, _ = SpendThreshold.objects.filter(organisation=organisation, pk=threshold_id).delete()
    return bool(deleted)


def event_record(
    *,
    organisation_id: int,
    event_type: str,
    key: str,
    data: dict[str, Any],
    endpoints: list[WebhookEndpoint] | None = None,
    enqueue: bool = True,
) -> Event | None:
    """Record an event at most once per ``key`` and queue its deliveries for after the commit.

    Returns the new event, or None when one with this key exists already (concurrent writers
    included: the unique key decides). ``endpoints`` narrows the recipients (the test button).
    Without ``enqueue`` the caller queues them: the new deliveries' ids are ``event.delivery_ids``.
    """
    try:
        with transaction.atomic():  # a savepoint: a lost race leaves the caller's transaction usable
            event = Event.objects.create(
                organisation_id=organisation_id, type=event_type, key=key[:200], data=data
            )
    except IntegrityError:
        if Event.objects.filter(key=key[:200]).exists():
            return None
        raise
    if endpoints is None:
        endpoints = [
            endpoint
            for endpoint in WebhookEndpoint.objects.filter(organisation_id=organisation_id, is_active=True)
            if endpoint.subscribes_to(event_type)
        ]
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(event=event, endpoint=endpoint, next_attempt_at=now) for endpoint in endpoints
    )
    delivery_ids = [delivery.pk for delivery in deliveries]
    event.delivery_ids = delivery_ids
    if delivery_ids and enqueue:
        transaction.on_commit(lambda: deliveries_enqueue(delivery_ids=delivery_ids))
    if (
        event_type in USAGE_EVENT_TYPES
        and WebhookEndpoint.objects.filter(
            organisation_id=organisation_id, is_active=True, email_alerts=True
        ).exists()
    ):
        transaction.on_commit(lambda: event_email_enqueue(event_id=event.pk))
    return event


def domain_event_record(event: DomainEvent) -> None:
    """The ``portal.events`` subscriber: record what a domain service published."""
    event_record(
        organisation_id=event.organisation_id,
        event_type=event.type,
        key=event.key or f"{event.type}:{uuid.uuid4().hex}",
        data=event.data,
    )


def webhook_test_send(*, endpoint: WebhookEndpoint) -> Event:
    """Send a ``webhook.test`` event to this endpoint alone (whatever its event types);
    ``DomainError`` when the endpoint is disabled (nothing would go)."""
    if not endpoint.is_active:
        raise DomainError("This endpoint is disabled: enable it before sending a test event.")
    with transaction.atomic():
        event = event_record(
            organisation_id=endpoint.organisation_id,
            event_type=EventType.WEBHOOK_TEST,
            key=f"webhook.test:{uuid.uuid4().hex}",
            data={
                "org_id": endpoint.organisation.org_id,
                "endpoint_url": endpoint.url,
                "message": "This is a test event from the Usage Portal.",
            },
            endpoints=[endpoint],
        )
    return event


def delivery_redeliver(*, delivery: Delivery) -> None:
    """Try this delivery once more now, whatever its state (the endpoint must be active)."""
    if not delivery.endpoint.is_active:
        raise DomainError("This endpoint is disabled: enable it before redelivering.")
    transaction.on_commit(lambda: deliveries_enqueue(delivery_ids=[delivery.pk], manual=True))


DELIVERY_BATCH = 50  # deliveries per deliver_batch task: a few seconds of POSTs to fast receivers


def deliveries_enqueue(*, delivery_ids: list[int], manual: bool = False) -> None:
    """Hand deliveries to Celery: one ``deliver`` task each for a single delivery or a manual
    redelivery, ``deliver_batch`` tasks of up to ``DELIVERY_BATCH`` for several (the events of one
    refresh), which spares a task's and a commit's overhead per delivery. A broker that is down is
    logged, never raised (the sweep task sends them later), so the write that caused them stands."""
    from .tasks import deliver, deliver_batch

    if manual or len(delivery_ids) == 1:
        messages = [
            (deliver, [delivery_id], {"manual": manual} if manual else {}) for delivery_id in delivery_ids
        ]
    else:
        messages = [
            (deliver_batch, [list(delivery_ids[start : start + DELIVERY_BATCH])], {})
            for start in range(0, len(delivery_ids), DELIVERY_BATCH)
        ]
    for task, args, kwargs in messages:
        try:
            task.apply_async(args=args, kwargs=kwargs)
        except Exception:  # the broker is down: the sweep will find the deliveries due
            logger.warning("webhooks: could not enqueue deliveries %s; the sweep will retry", args[0])


def event_email_enqueue(*, event_id: int) -> None:
    from .tasks import event_email

    try:
        event_email.apply_async(args=[event_id])
    except Exception:
        logger.warning("webhooks: could not enqueue the email of event %s", event_id)
