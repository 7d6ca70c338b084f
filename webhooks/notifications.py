"""Usage events by email, for owners who ticked "email alerts" on an endpoint."""

import json

from .delivery import owners_email
from .models import Event, WebhookEndpoint


def event_email_send(*, event_id: int) -> int:
    """Email the event to the organisation's owners if an active endpoint subscribed to its type
    has email alerts on; returns the number of emails sent."""
    event = Event.objects.select_related("organisation").filter(pk=event_id).first()
    if event is None:
        return 0
    wanted = any(
        endpoint.subscribes_to(event.type)
        for endpoint in WebhookEndpoint.objects.filter(
            organisation_id=event.organisation_id, is_active=True, email_alerts=True
        )
    )
    if not wanted:
        return 0
    return owners_email(
        organisation_id=event.organisation_id,
        subject=f"[Usage Portal] {event.organisation.name}: {event.get_type_display()}",
        message=f"{event.get_type_display()}\n\n{json.dumps(event.data, indent=2)}\n",
    )
