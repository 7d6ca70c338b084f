"""Deliveries queued together (the events of one refresh) are tried in batches: a fixed number of
statements whatever their number, each judged and followed up exactly as a single try is."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks import Webhook

from tests.factories import at, make_job
from usage.services import organisation_plan_set
from webhooks.delivery import Response, deliveries_attempt
from webhooks.models import Delivery, DeliveryAttempt, Event, EventType, WebhookEndpoint
from webhooks.services import DELIVERY_BATCH, deliveries_enqueue, webhook_endpoint_create

T0 = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


def _deliveries(endpoint, count: int, label: str) -> list[Delivery]:
    deliveries = []
    for index in range(count):
        event = Event.objects.create(
            organisation_id=endpoint.organisation_id,
            type=EventType.WEBHOOK_TEST,
            key=f"test:{label}:{index}",
            data={"n": index},
        )
        deliveries.append(
            Delivery.objects.create(event=event, endpoint=endpoint, next_attempt_at=timezone.now())
        )
    return deliveries


def test_a_batch_is_signed_delivered_and_costs_the_same_statements_for_3_or_30(acme, receiver):
    created = webhook_endpoint_create(organisation=acme, url=receiver.url)
    counts = []
    for size in (3, 30):
        deliveries = _deliveries(created.endpoint, size, f"size{size}")
        with CaptureQueriesContext(connection) as queries:
            outcomes = deliveries_attempt(delivery_ids=[delivery.pk for delivery in deliveries])
        counts.append(len(queries))
        assert sorted(outcomes) == sorted(delivery.pk for delivery in deliveries)
        assert all(outcome.delivered for outcome in outcomes.values())
    assert counts[0] == counts[1], counts
    assert len(receiver.requests) == 33
    for request in receiver.requests:
        Webhook(created.secret).verify(request.body, request.headers)
    assert set(Delivery.objects.values_list("state", "attempts")) == {("delivered", 1)}
    assert {request.headers["webhook-id"] for request in receiver.requests} == {
        event.webhook_id for event in Event.objects.all()
    }
    # Tried again (a duplicate message): nothing is sent.
    assert deliveries_attempt(delivery_ids=list(Delivery.objects.values_list("pk", flat=True))) == {}
    assert len(receiver.requests) == 33


def test_each_delivery_of_a_batch_is_judged_and_followed_up_as_alone(acme, allow_private, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [5, 300]
    fine = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/fine").endpoint
    broken = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/broken").endpoint
    gone = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/gone").endpoint
    disabled = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/disabled").endpoint
    WebhookEndpoint.objects.filter(pk=disabled.pk).update(is_active=False)
    [ok] = _deliveries(fine, 1, "ok")
    [failing] = _deliveries(broken, 1, "failing")
    [to_gone] = _deliveries(gone, 1, "gone")
    [to_disabled] = _deliveries(disabled, 1, "disabled")
    [later] = _deliveries(fine, 1, "later")
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + dt.timedelta(minutes=5))
    [done] = _deliveries(fine, 1, "done")
    Delivery.objects.filter(pk=done.pk).update(state=Delivery.State.DELIVERED)
    sent = []

    def send(vetted, body, headers):
        sent.append(vetted.url)
        return Response(status_code={"fine": 200, "broken": 500, "gone": 410}[vetted.url.rsplit("/", 1)[1]])

    ids = [ok.pk, failing.pk, to_gone.pk, to_disabled.pk, later.pk, done.pk]
    outcomes = deliveries_attempt(delivery_ids=ids, send=send)

    assert sorted(sent) == sorted(
        ["http://127.0.0.1:9/fine", "http://127.0.0.1:9/broken", "http://127.0.0.1:9/gone"]
    )
    assert set(outcomes) == {ok.pk, failing.pk, to_gone.pk}
    assert outcomes[ok.pk].delivered
    assert outcomes[failing.pk].retry_in == pytest.approx(5, abs=1)
    assert outcomes[to_gone.pk].retry_in is None
    states = dict(Delivery.objects.values_list("pk", "state"))
    assert states == {
        ok.pk: "delivered",
        failing.pk: "pending",
        to_gone.pk: "failed",
        to_disabled.pk: "failed",
        later.pk: "pending",
        done.pk: "delivered",
    }
    broken.refresh_from_db()
    gone.refresh_from_db()
    assert broken.failing_since is not None and not gone.is_active
    assert Delivery.objects.get(pk=later.pk).attempts == 0


def test_a_batch_leaves_a_delivery_claimed_by_another_worker_alone(acme, allow_private):
    endpoint = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/x").endpoint
    mine, theirs = _deliveries(endpoint, 2, "claims")
    # Another worker's claim: one more attempt and a lease in the future.
    Delivery.objects.filter(pk=theirs.pk).update(
        attempts=1, next_attempt_at=timezone.now() + dt.timedelta(minutes=15)
    )
    sent = []

    def send(vetted, body, headers):
        sent.append(body)
        return Response(status_code=200)

    outcomes = deliveries_attempt(delivery_ids=[mine.pk, theirs.pk], send=send)
    assert set(outcomes) == {mine.pk} and len(sent) == 1
    assert Delivery.objects.get(pk=theirs.pk).state == "pending"


def test_several_deliveries_are_queued_in_batches_and_one_alone(monkeypatch):
    queued = []
    monkeypatch.setattr(
        "webhooks.tasks.deliver.apply_async", lambda args, kwargs=None, **o: queued.append(("one", args))
    )
    monkeypatch.setattr(
        "webhooks.tasks.deliver_batch.apply_async",
        lambda args, kwargs=None, **o: queued.append(("batch", args)),
    )
    deliveries_enqueue(delivery_ids=[7])
    deliveries_enqueue(delivery_ids=list(range(DELIVERY_BATCH + 1)))
    deliveries_enqueue(delivery_ids=[8, 9], manual=True)
    assert queued == [
        ("one", [7]),
        ("batch", [list(range(DELIVERY_BATCH))]),
        ("batch", [[DELIVERY_BATCH]]),
        ("one", [8]),
        ("one", [9]),
    ]


def test_the_events_of_one_refresh_are_queued_together(
    acme, add_jobs, small_plan, allow_private, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(
        "webhooks.tasks.deliver_batch.apply_async", lambda args, kwargs=None, **o: queued.append(args[0])
    )
    monkeypatch.setattr(
        "webhooks.tasks.deliver.apply_async", lambda args, kwargs=None, **o: queued.append(args)
    )
    organisation_plan_set(organisation=acme, plan=small_plan)
    webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/x", event_types=["usage.tier_reached"])
    with django_capture_on_commit_callbacks(execute=True):
        add_jobs([make_job(acme, created_at=at(2025, 1, 2, n)) for n in range(5)])  # tier2 and tier3
    deliveries = sorted(Delivery.objects.values_list("pk", flat=True))
    assert len(deliveries) == 2 and queued == [deliveries]


def test_each_try_of_a_batch_is_signed_and_recorded_when_it_is_sent(acme, allow_private):
    """A try that waited behind a slow endpoint carries its own time: receivers refuse signatures
    older than 5 minutes, and the deliveries page shows when each try went."""
    endpoint = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/slow").endpoint
    sent = []
    with time_machine.travel(T0, tick=False) as clock:
        deliveries = _deliveries(endpoint, 2, "slow")

        def slow(vetted, body, headers):  # every try takes 4 minutes to answer
            sent.append(int(headers["webhook-timestamp"]))
            clock.shift(dt.timedelta(minutes=4))
            return Response(status_code=200)

        deliveries_attempt(delivery_ids=[delivery.pk for delivery in deliveries], send=slow)

    assert sent == [int(T0.timestamp()), int(T0.timestamp()) + 240]
    times = sorted(DeliveryAttempt.objects.values_list("created_at", flat=True))
    assert times == [T0, T0 + dt.timedelta(minutes=4)]
