"""Webhook endpoints, spend thresholds, the event outbox and its deliveries.

An ``Event`` is written in the transaction of the change that caused it (the outbox); one
``Delivery`` per subscribed endpoint is written with it, and each try of a delivery leaves a
``DeliveryAttempt``. Rows are written by ``webhooks.services`` and ``webhooks.delivery`` only.
"""

import uuid

from django.db import models
from django.db.models import Q


class EventType(models.TextChoices):
    TIER_REACHED = "usage.tier_reached", "Usage: a month enters a higher tier"
    FREE_JOBS_EXHAUSTED = "usage.free_jobs_exhausted", "Usage: the free jobs are used up"
    SPEND_THRESHOLD_CROSSED = "usage.spend_threshold_crossed", "Usage: a month's cost reaches a threshold"
    API_KEY_CREATED = "api_key.created", "API key created"
    API_KEY_REVOKED = "api_key.revoked", "API key revoked"
    WEBHOOK_TEST = "webhook.test", "Test event (sent on request)"


USAGE_EVENT_TYPES = (
    EventType.TIER_REACHED,
    EventType.FREE_JOBS_EXHAUSTED,
    EventType.SPEND_THRESHOLD_CROSSED,
)
SUBSCRIBABLE_EVENT_TYPES = [value for value in EventType.values if value != EventType.WEBHOOK_TEST]


class WebhookEndpoint(models.Model):
    """A customer URL that receives the organisation's events of ``event_types``, signed with
    ``secret`` (kept in clear: it is needed to sign; shown to the customer only once)."""

    organisation = models.ForeignKey(
        "accounts.Organisation", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField("URL", max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text="Event types sent to this URL.")
    is_active = models.BooleanField("active", default=True)
    secret = models.CharField(max_length=100, editable=False)
    email_alerts = models.BooleanField(
        default=False, help_text="Also email the organisation's owners the usage events of this endpoint."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["organisation", "created_at", "pk"]
        verbose_name = "webhook endpoint"
        constraints = [
            models.CheckConstraint(
                condition=Q(secret__startswith="whsec_"),  # noqa: S106 (a format, not a secret)
                name="webhookendpoint_secret_format",
            ),
        ]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        return event_type == EventType.WEBHOOK_TEST or event_type in self.event_types


class SpendThreshold(models.Model):
    """An amount of a month's final cost that an owner wants to hear about once it is reached."""

    organisation = models.ForeignKey(
        "accounts.Organisation", on_delete=models.CASCADE, related_name="spend_thresholds"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organisation", "amount"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "amount"], name="spendthreshold_unique_amount"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="spendthreshold_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.amount}"


class Event(models.Model):
    """One event of an organisation (the outbox). ``key`` makes it happen at most once, e.g.
    ``usage.tier_reached:org_abc:2025-01:tier2``; its ``webhook_id`` is the same on every retry."""

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, related_name="+")
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=64, choices=EventType.choices)
    key = models.CharField(max_length=200, unique=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["organisation", "created_at"], name="event_org_created_idx")]

    def __str__(self) -> str:
        return self.key

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.uid.hex}"


class Delivery(models.Model):
    """One event on its way to one endpoint: pending until a 2xx (delivered) or until the retry
    schedule is exhausted or the endpoint disabled (failed)."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-pk"]
        permissions = [("redeliver_delivery", "Can redeliver webhook deliveries")]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_unique_event_endpoint"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "delivered", "failed"]), name="delivery_state_valid"
            ),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.endpoint.url}"


class DeliveryAttempt(models.Model):
    """One POST of a delivery: its answer (status code, or the error) and how long it took."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["delivery", "created_at"], name="attempt_delivery_idx")]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
