"""A real Celery worker process runs the task that beat schedules, on the configured broker."""

import os
import time
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from accounts.services import api_key_create, organisation_create
from tests.factories import at, make_job, test_database_url
from tests.faults import celery_worker
from usage.engine.refresh import usage_refresh
from usage.models import MonthlyUsage
from usage.services import jobs_upsert

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90


def sender_for(broker_dir: Path | None) -> Celery:
    """A Celery client speaking to the same broker as the worker under test."""
    if broker_dir is None:
        return Celery("test-sender", broker=settings.CELERY_BROKER_URL)
    options = {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "processed_folder": str(broker_dir / "processed"),
        "control_folder": str(broker_dir / "control"),
        "store_processed": False,
    }
    return Celery("test-sender", broker="filesystem://", broker_transport_options=options)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_a_worker_runs_the_scheduled_recompute_and_repairs_aggregates(tmp_path):
    organisation = organisation_create(name="Worker Co", org_id="org_worker")
    key = api_key_create(organisation=organisation, name="k").api_key
    jobs_upsert(
        jobs=[make_job(organisation, created_at=at(2025, 1, 1 + day % 28), api_key=key) for day in range(40)]
    )
    usage_refresh(organisation_id=organisation.pk)
    expected = sorted(MonthlyUsage.objects.values_list("month", "tier", "is_free", "jobs"))
    MonthlyUsage.objects.all().delete()

    embedded = settings.CELERY_BROKER_URL.startswith("filesystem://")
    broker_dir = tmp_path / "broker" if embedded else None
    env = {**os.environ, "DATABASE_URL": test_database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    if broker_dir:
        for sub in ("queue", "processed", "control"):
            (broker_dir / sub).mkdir(parents=True)
        env["CELERY_FILESYSTEM_BROKER_DIR"] = str(broker_dir)
    log = (tmp_path / "worker.log").open("w+")
    worker = celery_worker(name="test", env=env, log=log)
    try:
        sender_for(broker_dir).send_task("usage.tasks.recompute_usage")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and worker.poll() is None:
            if sorted(MonthlyUsage.objects.values_list("month", "tier", "is_free", "jobs")) == expected:
                break
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.seek(0)
        output = log.read()
    assert sorted(MonthlyUsage.objects.values_list("month", "tier", "is_free", "jobs")) == expected, output
    assert "dispatched 1 organisation task(s)" in output
    assert "1 aggregate row(s) corrected" in output
