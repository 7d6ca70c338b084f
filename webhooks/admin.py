"""Staff views of webhooks: endpoints (editable flags), events and deliveries (read-only), and a
redeliver action for staff with ``webhooks.redeliver_delivery`` (the Support role)."""

from django.contrib import admin, messages

from portal.admin_base import PortalModelAdmin, ReadOnlyAdminMixin
from portal.errors import DomainError

from .models import Delivery, DeliveryAttempt, Event, SpendThreshold, WebhookEndpoint
from .services import delivery_redeliver


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(PortalModelAdmin):
    list_display = ["url", "organisation", "is_active", "failing_since", "disabled_reason", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "organisation__org_id", "organisation__name"]
    list_select_related = ["organisation"]
    readonly_fields = ["organisation", "url", "event_types", "created_at", "disabled_at", "failing_since"]
    fields = [
        "organisation",
        "url",
        "description",
        "event_types",
        "is_active",
        "email_alerts",
        "created_at",
        "disabled_at",
        "disabled_reason",
        "failing_since",
    ]

    def has_add_permission(self, request):
        return False  # created by owners on their page or with `manage.py createwebhook` (secret shown once)


@admin.register(SpendThreshold)
class SpendThresholdAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ["organisation", "amount", "created_at"]
    search_fields = ["organisation__org_id"]
    list_select_related = ["organisation"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ["key", "type", "organisation", "created_at"]
    list_filter = ["type"]
    search_fields = ["key", "organisation__org_id"]
    list_select_related = ["organisation"]
    readonly_fields = ["organisation", "uid", "type", "key", "data", "created_at"]


class DeliveryAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    fields = ["number", "created_at", "status_code", "duration_ms", "error"]
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ["event", "endpoint", "state", "attempts", "next_attempt_at", "created_at"]
    list_filter = ["state"]
    search_fields = ["event__key", "endpoint__url"]
    list_select_related = ["event", "endpoint"]
    readonly_fields = [
        "event",
        "endpoint",
        "state",
        "attempts",
        "first_attempt_at",
        "next_attempt_at",
        "created_at",
    ]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]

    def has_redeliver_permission(self, request):
        return request.user.has_perm("webhooks.redeliver_delivery")

    @admin.action(description="Redeliver the selected deliveries now", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        sent = 0
        for delivery in queryset.select_related("endpoint"):
            try:
                delivery_redeliver(delivery=delivery)
            except DomainError as error:
                self.message_user(request, f"{delivery}: {error.message}", messages.WARNING)
            else:
                sent += 1
        self.message_user(request, f"{sent} deliver{'y' if sent == 1 else 'ies'} queued.")
