"""Sending one delivery: sign, POST, record the attempt, decide what comes next.

``delivery_attempt`` is what the Celery task calls; it returns when the next try is due (the task
schedules it) and never raises for a failing customer server. Idempotent: a delivery that is
delivered, failed, claimed by another worker or not yet due is left alone.
"""

import datetime as dt
import functools
import json
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Membership
from portal.mail import subject_line

from . import signing
from .models import Delivery, DeliveryAttempt, WebhookEndpoint
from .ssrf import UnsafeUrl, VettedUrl, url_vet

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
FAILING_LIMIT = dt.timedelta(days=5)
# While one try runs, a sweep must not send the delivery again; past this the worker is presumed
# dead and the sweep takes over.
CLAIM_LEASE = dt.timedelta(minutes=15)
USER_AGENT = "UsagePortal-Webhooks/1"


@dataclass(frozen=True)
class Response:
    status_code: int | None
    error: str = ""


Sender = Callable[[VettedUrl, bytes, dict[str, str]], Response]


@dataclass(frozen=True)
class AttemptOutcome:
    """What one call did: ``attempt`` is None when nothing was sent; ``retry_in`` (seconds) is
    set when another try is due."""

    attempt: DeliveryAttempt | None
    delivered: bool = False
    retry_in: float | None = None


def payload_body(delivery: Delivery) -> bytes:
    """The JSON body of the event: ``{"type", "timestamp", "data"}``, the same on every try."""
    event = delivery.event
    payload = {
        "type": event.type,
        "timestamp": event.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=False).encode()


def signed_headers(*, secret: str, webhook_id: str, body: bytes, now: dt.datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature(
            secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body
        ),
    }


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings of every send, made once per process: building them loads the CA bundle,
    about 70 ms, which a new ``httpx.Client`` would otherwise do for every delivery. Each connection
    is still verified against its own server name."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def http_send(vetted: VettedUrl, body: bytes, headers: dict[str, str]) -> Response:
    """POST with a 10 s timeout and no redirects, connecting to the vetted address when there is
    one (the Host header and TLS server name stay the URL's host). Only the status line and
    headers are read: the answer's body, whatever its size or pace, is never waited for."""
    url = httpx.URL(vetted.url)
    extensions = {}
    if vetted.address is not None:
        headers = {**headers, "host": url.netloc.decode("ascii")}
        extensions["sni_hostname"] = vetted.hostname
        url = url.copy_with(host=vetted.address)
    try:
        with httpx.Client(
            timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False, verify=_tls_context()
        ) as client:
            request = client.build_request("POST", url, content=body, headers=headers, extensions=extensions)
            response = client.send(request, stream=True)
            response.close()  # drops the connection with the body unread
    except httpx.TimeoutException:
        return Response(status_code=None, error="timed out after 10 s")
    except httpx.HTTPError as error:
        return Response(status_code=None, error=f"{type(error).__name__}: {error}"[:500])
    return Response(status_code=response.status_code)


def retry_schedule() -> list[int]:
    return [int(seconds) for seconds in settings.WEBHOOK_RETRY_SCHEDULE]


def delivery_attempt(*, delivery_id: int, manual: bool = False, send: Sender | None = None) -> AttemptOutcome:
    """Make one try of a delivery (see the module docstring); ``manual`` is a redelivery asked
    for by a person: it is sent whatever the state, and schedules no retry."""
    send = send or http_send
    now = timezone.now()
    delivery = (
        Delivery.objects.select_related("event", "endpoint", "endpoint__organisation")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return AttemptOutcome(attempt=None)
    endpoint = delivery.endpoint
    if not manual:
        if delivery.state != Delivery.State.PENDING:
            return AttemptOutcome(attempt=None)
        if delivery.next_attempt_at and delivery.next_attempt_at > now:
            return AttemptOutcome(attempt=None)  # a duplicate message, early: the due one will come
        if not endpoint.is_active:
            Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.PENDING).update(
                state=Delivery.State.FAILED, next_attempt_at=None
            )
            return AttemptOutcome(attempt=None)
    elif not endpoint.is_active:
        return AttemptOutcome(attempt=None)

    claimed = Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts)
    if not manual:
        claimed = claimed.filter(state=Delivery.State.PENDING)
    if not claimed.update(
        attempts=F("attempts") + 1,
        first_attempt_at=Coalesce(F("first_attempt_at"), now),
        next_attempt_at=now + CLAIM_LEASE,
    ):
        return AttemptOutcome(attempt=None)  # another worker has it
    number = delivery.attempts + 1
    first_attempt_at = delivery.first_attempt_at or now

    response, duration_ms, sent_at = _send(delivery, send=send)
    # What the try did is one transaction (one commit): the attempt and the delivery's new state.
    with transaction.atomic():
        return _attempt_record(
            delivery=delivery,
            endpoint=endpoint,
            response=response,
            number=number,
            first_attempt_at=first_attempt_at,
            duration_ms=duration_ms,
            sent_at=sent_at,
            manual=manual,
        )


def _send(delivery: Delivery, *, send: Sender) -> tuple[Response, int, dt.datetime]:
    """Sign and POST the delivery's event (the URL vetted again first); the answer, how many
    milliseconds it took and when it was sent (the signature's timestamp: a try that waited
    behind others in a batch is signed when it goes, not when the batch began)."""
    endpoint = delivery.endpoint
    body = payload_body(delivery)
    sent_at = timezone.now()
    headers = signed_headers(
        secret=endpoint.secret, webhook_id=delivery.event.webhook_id, body=body, now=sent_at
    )
    started = time.monotonic()
    try:
        vetted = url_vet(endpoint.url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
    except UnsafeUrl as refused:
        response = Response(status_code=None, error=f"refused: {refused.message}"[:500])
    else:
        response = send(vetted, body, headers)
    return response, int((time.monotonic() - started) * 1000), sent_at


def deliveries_attempt(
    *, delivery_ids: Sequence[int], send: Sender | None = None
) -> dict[int, AttemptOutcome]:
    """The due tries of several deliveries (queued together: the events of one refresh) with a
    fixed number of statements whatever their number: one load, one claim, the POSTs one after
    the other, and one transaction recording every attempt. Each delivery is judged as
    ``delivery_attempt`` judges it (not pending, not due or claimed elsewhere: left alone; endpoint
    disabled: failed), and a failed try goes on exactly as there. Returns the outcome of each
    delivery tried, by id."""
    send = send or http_send
    now = timezone.now()
    loaded = (
        Delivery.objects.select_related("event", "endpoint", "endpoint__organisation")
        .filter(pk__in=list(delivery_ids), state=Delivery.State.PENDING)
        .order_by("pk")
    )
    due = [
        delivery for delivery in loaded if not (delivery.next_attempt_at and delivery.next_attempt_at > now)
    ]
    disabled = [delivery.pk for delivery in due if not delivery.endpoint.is_active]
    if disabled:
        Delivery.objects.filter(pk__in=disabled, state=Delivery.State.PENDING).update(
            state=Delivery.State.FAILED, next_attempt_at=None
        )
    due = [delivery for delivery in due if delivery.endpoint.is_active]
    if not due:
        return {}
    # One claim for all: a delivery claimed by another worker since the load has a lease in the
    # future and is skipped; this claim's lease (to the microsecond) tells which rows are ours.
    lease = now + CLAIM_LEASE
    claimable = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    count = Delivery.objects.filter(
        claimable, pk__in=[delivery.pk for delivery in due], state=Delivery.State.PENDING
    ).update(
        attempts=F("attempts") + 1,
        first_attempt_at=Coalesce(F("first_attempt_at"), now),
        next_attempt_at=lease,
    )
    if count < len(due):
        ours = set(
            Delivery.objects.filter(pk__in=[d.pk for d in due], next_attempt_at=lease).values_list(
                "pk", flat=True
            )
        )
        due = [delivery for delivery in due if delivery.pk in ours]

    tries = [(delivery, *_send(delivery, send=send)) for delivery in due]
    now = timezone.now()  # the retries are scheduled from the end of the batch
    outcomes: dict[int, AttemptOutcome] = {}
    with transaction.atomic():
        attempts = DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery=delivery,
                number=delivery.attempts + 1,
                status_code=response.status_code,
                duration_ms=duration_ms,
                error=response.error,
                created_at=sent_at,
            )
            for delivery, response, duration_ms, sent_at in tries
        )
        delivered = [attempt.delivery for attempt in attempts if attempt.succeeded]
        if delivered:
            Delivery.objects.filter(pk__in=[delivery.pk for delivery in delivered]).update(
                state=Delivery.State.DELIVERED, next_attempt_at=None
            )
            recovered = {delivery.endpoint_id for delivery in delivered if delivery.endpoint.failing_since}
            if recovered:
                WebhookEndpoint.objects.filter(pk__in=recovered).update(failing_since=None)
        for attempt, (delivery, response, _, _) in zip(attempts, tries, strict=True):
            if attempt.succeeded:
                outcomes[delivery.pk] = AttemptOutcome(attempt=attempt, delivered=True)
            else:
                outcomes[delivery.pk] = _attempt_next(
                    delivery=delivery,
                    endpoint=delivery.endpoint,
                    attempt=attempt,
                    response=response,
                    number=attempt.number,
                    first_attempt_at=delivery.first_attempt_at or now,
                    now=now,
                    manual=False,
                )
    return outcomes


def _attempt_record(
    *,
    delivery: Delivery,
    endpoint: WebhookEndpoint,
    response: Response,
    number: int,
    first_attempt_at: dt.datetime,
    duration_ms: int,
    sent_at: dt.datetime,
    manual: bool,
) -> AttemptOutcome:
    """Record a try's attempt (at the time it was sent) and decide what comes next (see
    ``delivery_attempt``)."""
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery,
        number=number,
        status_code=response.status_code,
        duration_ms=duration_ms,
        error=response.error,
        created_at=sent_at,
    )
    return _attempt_next(
        delivery=delivery,
        endpoint=endpoint,
        attempt=attempt,
        response=response,
        number=number,
        first_attempt_at=first_attempt_at,
        now=timezone.now(),
        manual=manual,
    )


def _attempt_next(
    *,
    delivery: Delivery,
    endpoint: WebhookEndpoint,
    attempt: DeliveryAttempt,
    response: Response,
    number: int,
    first_attempt_at: dt.datetime,
    now: dt.datetime,
    manual: bool,
) -> AttemptOutcome:
    """The delivery's state after an attempt: delivered, failed, or its next try scheduled."""
    if attempt.succeeded:
        Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.DELIVERED, next_attempt_at=None)
        if endpoint.failing_since is not None:  # as loaded: a failure meanwhile waits for the next success
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        return AttemptOutcome(attempt=attempt, delivered=True)

    if response.status_code == 410:
        _endpoint_disable(endpoint, reason="The endpoint answered 410 Gone.", notify=False)
        _delivery_fail(delivery, manual=manual)
        return AttemptOutcome(attempt=attempt)

    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    failing_since = WebhookEndpoint.objects.values_list("failing_since", flat=True).get(pk=endpoint.pk)
    if failing_since is not None and now - failing_since >= FAILING_LIMIT:
        _endpoint_disable(endpoint, reason="Deliveries failed for 5 days.", notify=True)
        _delivery_fail(delivery, manual=manual)
        return AttemptOutcome(attempt=attempt)

    if manual:
        Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.PENDING).update(next_attempt_at=now)
        return AttemptOutcome(attempt=attempt)
    schedule = retry_schedule()
    if number > len(schedule):
        Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.FAILED, next_attempt_at=None)
        return AttemptOutcome(attempt=attempt)
    due = first_attempt_at + dt.timedelta(seconds=schedule[number - 1])
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=due)
    return AttemptOutcome(attempt=attempt, retry_in=max(0.0, (due - now).total_seconds()))


def _delivery_fail(delivery: Delivery, *, manual: bool) -> None:
    deliveries = Delivery.objects.filter(pk=delivery.pk)
    if manual:
        deliveries = deliveries.filter(state=Delivery.State.PENDING)
    deliveries.update(state=Delivery.State.FAILED, next_attempt_at=None)


def _endpoint_disable(endpoint: WebhookEndpoint, *, reason: str, notify: bool) -> None:
    """Disable the endpoint (once); with ``notify``, email the organisation's owners."""
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(
        is_active=False, disabled_at=timezone.now(), disabled_reason=reason
    )
    logger.warning("webhooks: endpoint %s disabled: %s", endpoint.pk, reason)
    if changed and notify:
        owners_email(
            organisation_id=endpoint.organisation_id,
            subject=f"Webhook endpoint disabled: {endpoint.url}",
            message=(
                f"The webhook endpoint {endpoint.url} of {endpoint.organisation.name} "
                f"({endpoint.organisation.org_id}) was disabled: {reason}\n"
                "Fix it, then enable it again on the webhooks page of the portal."
            ),
        )


def owners_email(*, organisation_id: int, subject: str, message: str) -> int:
    """Email the owners of an organisation who have an address; returns how many were sent."""
    recipients = list(
        Membership.objects.filter(organisation_id=organisation_id, role=Membership.Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return 0
    return send_mail(subject_line(subject), message, None, recipients, fail_silently=True)
