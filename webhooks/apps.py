from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks and usage alerts"

    def ready(self) -> None:
        from portal.events import event_subscribe
        from usage.engine.hooks import after_recompute_register

        from .detection import usage_events_detect
        from .services import domain_event_record

        after_recompute_register(usage_events_detect)
        event_subscribe(domain_event_record)
