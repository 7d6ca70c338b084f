"""Reads of the webhooks app: an organisation's endpoints, thresholds and recent deliveries."""

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from accounts.models import Organisation

from .models import Delivery, DeliveryAttempt, SpendThreshold, WebhookEndpoint

DELIVERY_HISTORY = dt.timedelta(days=30)
ATTEMPTS_SHOWN = 100


@dataclass
class EndpointOverview:
    endpoint: WebhookEndpoint
    attempts: list[DeliveryAttempt]


def webhook_endpoint_get(*, organisation: Organisation, endpoint_id: int) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(organisation=organisation, pk=endpoint_id).first()


def delivery_get(*, organisation: Organisation, delivery_id: int) -> Delivery | None:
    return (
        Delivery.objects.select_related("endpoint", "event")
        .filter(endpoint__organisation=organisation, pk=delivery_id)
        .first()
    )


def webhook_overview(*, organisation: Organisation) -> list[EndpointOverview]:
    """Each endpoint with its delivery attempts of the last 30 days, newest first (the latest
    ``ATTEMPTS_SHOWN``); a constant number of queries."""
    since = timezone.now() - DELIVERY_HISTORY
    endpoints = list(WebhookEndpoint.objects.filter(organisation=organisation).order_by("created_at", "pk"))
    attempts = (
        DeliveryAttempt.objects.select_related("delivery__event")
        .filter(delivery__endpoint__in=endpoints, created_at__gte=since)
        .order_by("-created_at", "-pk")
    )
    by_endpoint: dict[int, list[DeliveryAttempt]] = {endpoint.pk: [] for endpoint in endpoints}
    for attempt in attempts[: ATTEMPTS_SHOWN * max(1, len(endpoints))]:
        shown = by_endpoint[attempt.delivery.endpoint_id]
        if len(shown) < ATTEMPTS_SHOWN:
            shown.append(attempt)
    return [EndpointOverview(endpoint=endpoint, attempts=by_endpoint[endpoint.pk]) for endpoint in endpoints]


def spend_threshold_list(*, organisation: Organisation) -> list[SpendThreshold]:
    return list(SpendThreshold.objects.filter(organisation=organisation).order_by("amount"))
