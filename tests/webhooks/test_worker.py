"""A real Celery worker delivers an event to the local receiver and retries it on the schedule."""

import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from standardwebhooks import Webhook

from portal.celery import app as celery_app
from tests.factories import test_database_url
from tests.faults import celery_worker
from webhooks.models import Delivery
from webhooks.services import webhook_endpoint_create, webhook_test_send

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_a_worker_delivers_and_retries_with_the_same_webhook_id(acme, receiver, tmp_path):
    """The commit enqueues the delivery on the configured broker; the worker sends it, gets a 503,
    schedules the retry itself and delivers it."""
    celery_app.set_current()  # a sender app made by another worker test may have become current
    receiver.statuses = [503, 200]
    endpoint = webhook_endpoint_create(organisation=acme, url=receiver.url).endpoint
    delivery = Delivery.objects.get(event=webhook_test_send(endpoint=endpoint))  # enqueued on commit

    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "WEBHOOK_ALLOW_PRIVATE_URLS": "True",
        "WEBHOOK_RETRY_SCHEDULE": "1",
    }
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):  # the folder this process sent to
        queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        env["CELERY_FILESYSTEM_BROKER_DIR"] = str(queue.parent)
    log = (tmp_path / "worker.log").open("w+")
    worker = celery_worker(name="test-webhooks", env=env, log=log)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and worker.poll() is None:
            delivery.refresh_from_db()
            if delivery.state == Delivery.State.DELIVERED:
                break
            time.sleep(0.3)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.seek(0)
        output = log.read()
    assert delivery.state == Delivery.State.DELIVERED, output
    assert [request.headers["webhook-id"] for request in receiver.requests] == [delivery.event.webhook_id] * 2
    Webhook(endpoint.secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert list(delivery.attempt_rows.order_by("number").values_list("status_code", flat=True)) == [503, 200]
