"""Delivery to a real local receiver: signed per Standard Webhooks, retried on the schedule with
the same webhook-id, endpoints disabled on 410 or after 5 days of failures."""

import datetime as dt
import json
import socket
import threading

import pytest
import time_machine
from django.core import mail
from standardwebhooks import Webhook

from accounts.models import Membership
from webhooks import signing
from webhooks.delivery import Response, delivery_attempt, http_send
from webhooks.models import Delivery, WebhookEndpoint
from webhooks.services import delivery_redeliver, webhook_endpoint_create, webhook_test_send
from webhooks.ssrf import VettedUrl
from webhooks.tasks import deliver

T0 = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def endpoint(acme, receiver):
    return webhook_endpoint_create(organisation=acme, url=receiver.url).endpoint


def _test_delivery(endpoint) -> Delivery:
    event = webhook_test_send(endpoint=endpoint)
    return Delivery.objects.get(event=event)


def test_a_delivery_is_signed_and_verifies_with_standardwebhooks(endpoint, receiver):
    delivery = _test_delivery(endpoint)
    outcome = delivery_attempt(delivery_id=delivery.pk)
    assert outcome.delivered
    [request] = receiver.requests
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test"
    assert payload["data"]["org_id"] == "org_acme"
    assert set(json.loads(request.body)) == {"type", "timestamp", "data"}
    assert request.headers["webhook-id"] == delivery.event.webhook_id
    assert request.headers["content-type"] == "application/json"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    assert delivery.attempt_rows.get().status_code == 200
    # Delivered: a duplicate message does nothing.
    assert delivery_attempt(delivery_id=delivery.pk).attempt is None
    assert len(receiver.requests) == 1


def test_retries_follow_the_schedule_with_the_same_webhook_id(endpoint, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [5, 300, 1800]
    receiver.statuses = [500, 503, 302, 200]
    receiver.extra_headers = {"location": "https://elsewhere.example/"}
    with time_machine.travel(T0, tick=False) as clock:
        delivery = _test_delivery(endpoint)
        due = []
        outcome = delivery_attempt(delivery_id=delivery.pk)
        while outcome.retry_in is not None:
            due.append(outcome.retry_in)
            clock.move_to(T0 + dt.timedelta(seconds=sum(due) - 1))
            assert delivery_attempt(delivery_id=delivery.pk).attempt is None  # not due yet: a duplicate
            clock.shift(1)
            outcome = delivery_attempt(delivery_id=delivery.pk)
    assert due == [5, 295, 1500]  # 5, 300 and 1800 s after the first try
    assert outcome.delivered
    assert {request.headers["webhook-id"] for request in receiver.requests} == {delivery.event.webhook_id}
    assert len(receiver.requests) == 4
    stamps = [int(request.headers["webhook-timestamp"]) for request in receiver.requests]
    assert [stamp - stamps[0] for stamp in stamps] == [0, 5, 300, 1800]
    for request in receiver.requests:  # each try is signed afresh, with its own timestamp
        assert signing.signature_valid(
            secret=endpoint.secret,
            webhook_id=request.headers["webhook-id"],
            timestamp=int(request.headers["webhook-timestamp"]),
            body=request.body,
            header=request.headers["webhook-signature"],
        )
    codes = list(delivery.attempt_rows.order_by("number").values_list("number", "status_code"))
    assert codes == [(1, 500), (2, 503), (3, 302), (4, 200)]


def test_a_delivery_fails_when_the_schedule_is_exhausted(endpoint, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [5]
    receiver.statuses = [500]
    with time_machine.travel(T0, tick=False) as clock:
        delivery = _test_delivery(endpoint)
        assert delivery_attempt(delivery_id=delivery.pk).retry_in == 5
        clock.shift(5)
        assert delivery_attempt(delivery_id=delivery.pk).retry_in is None
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.failing_since == T0


def test_410_disables_the_endpoint(endpoint, receiver):
    receiver.statuses = [410]
    delivery = _test_delivery(endpoint)
    outcome = delivery_attempt(delivery_id=delivery.pk)
    assert outcome.retry_in is None
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "410" in endpoint.disabled_reason
    delivery.refresh_from_db()
    assert delivery.state == "failed"


def test_failing_for_5_days_disables_and_emails_the_owners(acme, owner, member, endpoint, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [5, 86400 * 5]
    receiver.statuses = [500]
    with time_machine.travel(T0, tick=False) as clock:
        delivery = _test_delivery(endpoint)
        delivery_attempt(delivery_id=delivery.pk)
        clock.shift(5)
        delivery_attempt(delivery_id=delivery.pk)
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
        clock.move_to(T0 + dt.timedelta(days=5, seconds=1))
        assert delivery_attempt(delivery_id=delivery.pk).retry_in is None
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.disabled_reason == "Deliveries failed for 5 days."
    [message] = mail.outbox
    assert message.to == [owner.email]
    assert endpoint.url in message.subject
    assert Membership.objects.filter(role="member", user=member).exists()


def test_a_success_resets_failing_since(endpoint, receiver):
    receiver.statuses = [500, 200]
    first = _test_delivery(endpoint)
    delivery_attempt(delivery_id=first.pk)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is not None
    delivery_attempt(delivery_id=_test_delivery(endpoint).pk)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


def test_a_refused_connection_is_retried(acme, allow_private):
    endpoint = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/closed").endpoint
    with time_machine.travel(T0, tick=False):  # the retry is due 5 s after the try began
        delivery = _test_delivery(endpoint)
        outcome = delivery_attempt(delivery_id=delivery.pk)
    assert outcome.retry_in == 5
    assert outcome.attempt.status_code is None and outcome.attempt.error


def test_the_guard_runs_again_at_send_time(endpoint, receiver, settings):
    delivery = _test_delivery(endpoint)
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False  # the saved http://127.0.0.1 URL is no longer allowed
    outcome = delivery_attempt(delivery_id=delivery.pk)
    assert outcome.attempt.error.startswith("refused:")
    assert outcome.retry_in is not None
    assert receiver.requests == []


def test_a_disabled_endpoint_gets_nothing_more(endpoint, receiver):
    delivery = _test_delivery(endpoint)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    assert delivery_attempt(delivery_id=delivery.pk).attempt is None
    assert Delivery.objects.get(pk=delivery.pk).state == "failed"
    assert receiver.requests == []


def test_redeliver_sends_a_delivered_event_again_with_its_id(
    endpoint, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    delivery = _test_delivery(endpoint)
    delivery_attempt(delivery_id=delivery.pk)
    calls = []
    monkeypatch.setattr(deliver, "apply_async", lambda args, kwargs=None, **o: calls.append((args, kwargs)))
    with django_capture_on_commit_callbacks(execute=True):
        delivery_redeliver(delivery=delivery)
    assert calls == [([delivery.pk], {"manual": True})]
    deliver.run(delivery.pk, manual=True)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    assert Delivery.objects.get(pk=delivery.pk).attempts == 2


def test_the_task_schedules_the_next_try_with_a_countdown(endpoint, receiver, monkeypatch):
    receiver.statuses = [500]
    scheduled = []
    monkeypatch.setattr(
        deliver, "apply_async", lambda args, countdown=None, **o: scheduled.append((args, countdown))
    )
    with time_machine.travel(T0, tick=False):
        delivery = _test_delivery(endpoint)
        deliver.run(delivery.pk)
    assert scheduled == [([delivery.pk], 5.0)]


def test_the_send_connects_to_the_vetted_address_and_keeps_the_host(receiver):
    """The address that passed the guard is the one connected to; the URL's host stays in Host
    (and, over https, in the TLS server name)."""
    port = receiver.url.split(":")[2].split("/")[0]
    vetted = VettedUrl(
        url=f"http://hooks.invalid:{port}/hooks", hostname="hooks.invalid", address="127.0.0.1"
    )
    response = http_send(vetted, b"{}", {"content-type": "application/json"})
    assert response.status_code == 200
    assert receiver.requests[0].headers["host"] == f"hooks.invalid:{port}"


def test_the_answer_s_body_is_never_read_whatever_its_size_or_pace():
    """A receiver announcing 200 MB and sending it a byte at a time would hold a worker and its
    memory: the send returns with the status line, the body unread."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def serve():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 209715200\r\n\r\nx")
            release.wait(30)  # the rest of the body never comes while the test runs

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        vetted = VettedUrl(url=f"http://127.0.0.1:{port}/hooks", hostname="127.0.0.1", address=None)
        response = http_send(vetted, b"{}", {"content-type": "application/json"})
    finally:
        release.set()
        thread.join(5)
        listener.close()
    assert response == Response(status_code=200)


def test_money_in_a_delivered_event_is_an_exact_decimal_string(acme, receiver, add_jobs):
    """A float would round 1.000065 down (binary); the payload carries /usage's half-up figure."""
    from decimal import Decimal

    from tests.factories import at, make_job
    from usage.models import PricingPlan, PricingTier
    from usage.services import organisation_plan_set
    from webhooks.services import spend_threshold_add

    plan = PricingPlan.objects.create(
        name="thirds",
        currency="EUR",
        per_job_fee=Decimal("0.333355"),
        transcription_rate=Decimal("0"),
        note_rate=Decimal("0"),
    )
    PricingTier.objects.create(plan=plan, name="tier1", first_rank=1, discount_percent=0)
    organisation_plan_set(organisation=acme, plan=plan)
    endpoint = webhook_endpoint_create(
        organisation=acme, url=receiver.url, event_types=["usage.spend_threshold_crossed"]
    ).endpoint
    spend_threshold_add(organisation=acme, amount="1")
    add_jobs([make_job(acme, created_at=at(2025, 4, 1, n)) for n in range(3)])  # 3 × 0.333355 = 1.000065

    delivery = Delivery.objects.get(endpoint=endpoint)
    assert delivery_attempt(delivery_id=delivery.pk).delivered
    [request] = receiver.requests
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["type"] == "usage.spend_threshold_crossed"
    assert payload["data"] == {
        "org_id": "org_acme",
        "month": "2025-04",
        "currency": "EUR",
        "threshold": "1.00",
        "final_cost": "1.00007",
    }
    assert round(float(Decimal("1.000065")), 5) == 1.00006  # what a float payload would have said
    assert b'"final_cost":"1.00007"' in request.body
