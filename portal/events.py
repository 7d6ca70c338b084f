"""A tiny publish/subscribe point for domain events that leave the portal (webhooks, emails).

A domain service calls ``event_publish`` in the transaction of the change; the webhooks app
subscribes from its ``AppConfig.ready``. The publisher imports nothing of the subscribers, so
``accounts`` stays below the apps that build on it. With no subscriber, publishing does nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to an organisation. ``key`` makes it unique (at most once per
    key); None means every publication is a new event."""

    organisation_id: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    key: str | None = None


Subscriber = Callable[[DomainEvent], None]
_subscribers: list[Subscriber] = []


def event_subscribe(subscriber: Subscriber) -> None:
    """Add ``subscriber``; subscribing the same function twice keeps one."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def event_publish(event: DomainEvent) -> None:
    """Hand ``event`` to every subscriber, synchronously, in the caller's transaction."""
    for subscriber in list(_subscribers):
        subscriber(event)
