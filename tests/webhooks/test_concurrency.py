"""An import's refresh and the nightly reconcile racing on the same organisation raise a usage
event once: the organisation's row lock orders them and the event's unique key is the backstop."""

import threading

import pytest
from django.db import connection

from tests.factories import at, make_job
from usage.engine.recompute import usage_recompute
from usage.engine.refresh import usage_refresh
from usage.services import jobs_upsert, organisation_plan_set
from webhooks.models import Event


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_refresh_and_reconcile_racing_raise_one_tier_event(acme, small_plan):
    organisation_plan_set(organisation=acme, plan=small_plan)
    for round_ in range(3):
        jobs_upsert(jobs=[make_job(acme, created_at=at(2025, 1 + round_, 1, hour)) for hour in range(3)])
        start = threading.Barrier(3)
        errors = []

        def run(work, start=start, errors=errors):
            try:
                start.wait()
                work()
            except Exception as error:  # reported by the assertion below
                errors.append(error)
            finally:
                connection.close()

        workers = [
            threading.Thread(target=run, args=(lambda: usage_refresh(organisation_id=acme.pk),)),
            threading.Thread(target=run, args=(lambda: usage_recompute(organisation_ids=[acme.pk]),)),
            threading.Thread(target=run, args=(lambda: usage_recompute(),)),
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert errors == []
    keys = sorted(Event.objects.filter(type="usage.tier_reached").values_list("key", flat=True))
    assert keys == [f"usage.tier_reached:org_acme:2025-0{month}:tier2" for month in (1, 2, 3)]
