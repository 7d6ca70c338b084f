"""Usage events are detected from the aggregates after every recompute, exactly once per key."""

from decimal import Decimal

import pytest

from accounts.services import api_key_create, api_key_revoke
from tests.factories import at, make_job
from usage.engine.recompute import usage_recompute
from usage.services import organisation_plan_set
from webhooks.detection import usage_events_detect
from webhooks.models import Delivery, Event
from webhooks.services import spend_threshold_add, webhook_endpoint_create


def _events(event_type):
    return list(Event.objects.filter(type=event_type).order_by("key").values_list("key", flat=True))


def test_a_month_passing_job_1000_reaches_tier2_once(acme, add_jobs):
    jobs = [make_job(acme, created_at=at(2025, 1, 1 + n % 28, 0, n % 60)) for n in range(1000)]
    add_jobs(jobs)
    assert _events("usage.tier_reached") == []
    add_jobs([make_job(acme, created_at=at(2025, 1, 31))])
    add_jobs(jobs)  # a re-import of the same jobs
    usage_recompute(organisation_ids=[acme.pk])  # the nightly reconcile
    usage_recompute()
    assert _events("usage.tier_reached") == ["usage.tier_reached:org_acme:2025-01:tier2"]
    event = Event.objects.get(type="usage.tier_reached")
    assert event.data == {
        "org_id": "org_acme",
        "month": "2025-01",
        "tier": "tier2",
        "discount_percentage": 10.0,
        "jobs": 1001,
    }


def test_every_tier_entered_is_one_event_and_lowering_usage_raises_nothing(acme, add_jobs, small_plan):
    organisation_plan_set(organisation=acme, plan=small_plan)
    jobs = [make_job(acme, created_at=at(2025, 2, 1, hour)) for hour in range(5)]
    add_jobs(jobs[:3])
    assert _events("usage.tier_reached") == ["usage.tier_reached:org_acme:2025-02:tier2"]
    add_jobs(jobs[3:])
    assert _events("usage.tier_reached") == [
        "usage.tier_reached:org_acme:2025-02:tier2",
        "usage.tier_reached:org_acme:2025-02:tier3",
    ]
    # The jobs move to another month: February drops back, nothing new is raised for it.
    moved = [
        make_job(acme, created_at=at(2025, 3, 1, n), external_id=job.external_id)
        for n, job in enumerate(jobs[:4])
    ]
    add_jobs(moved)
    assert len(_events("usage.tier_reached")) == 3  # March reached tier2 only
    assert "usage.tier_reached:org_acme:2025-03:tier2" in _events("usage.tier_reached")
    assert usage_events_detect({acme.pk: None}) == 0


def test_free_jobs_exhausted_once_per_allowance(acme, add_jobs):
    acme.free_job_allowance = 3
    acme.save()
    add_jobs([make_job(acme, created_at=at(2025, 1, 2, n)) for n in range(2)])
    assert _events("usage.free_jobs_exhausted") == []
    add_jobs([make_job(acme, created_at=at(2025, 2, 2, n)) for n in range(2)])
    add_jobs([make_job(acme, created_at=at(2025, 2, 3))])
    usage_recompute()
    assert _events("usage.free_jobs_exhausted") == ["usage.free_jobs_exhausted:org_acme:3"]
    assert Event.objects.get(type="usage.free_jobs_exhausted").data == {
        "org_id": "org_acme",
        "free_job_allowance": 3,
        "jobs": 4,
    }


def test_spend_threshold_crossed_once_per_month_and_amount(acme, add_jobs, small_plan):
    organisation_plan_set(organisation=acme, plan=small_plan)  # 1.00 a job, 10 % off from job 3
    spend_threshold_add(organisation=acme, amount="2.50")
    spend_threshold_add(organisation=acme, amount=100)
    add_jobs([make_job(acme, created_at=at(2025, 4, 1, n)) for n in range(2)])
    assert _events("usage.spend_threshold_crossed") == []
    add_jobs([make_job(acme, created_at=at(2025, 4, 2, n)) for n in range(2)])  # 2 + 0.9 + 0.9
    usage_recompute()
    assert _events("usage.spend_threshold_crossed") == ["usage.spend_threshold_crossed:org_acme:2025-04:2.50"]
    assert Event.objects.get(type="usage.spend_threshold_crossed").data == {
        "org_id": "org_acme",
        "month": "2025-04",
        "currency": "USD",
        "threshold": "2.50",
        "final_cost": "3.80000",
    }


def test_api_key_events_come_from_the_accounts_services(acme, allow_private):
    webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/x", event_types=["api_key.revoked"])
    created = api_key_create(organisation=acme, name="ci")
    api_key_revoke(api_key=created.api_key)
    api_key_revoke(api_key=created.api_key)
    assert _events("api_key.created") == [f"api_key.created:{created.api_key.pk}"]
    assert _events("api_key.revoked") == [f"api_key.revoked:{created.api_key.pk}"]
    assert Event.objects.get(type="api_key.revoked").data["key_name"] == "ci"
    # Only the subscribed type is delivered to the endpoint.
    assert list(Delivery.objects.values_list("event__type", flat=True)) == ["api_key.revoked"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_deliveries_are_enqueued_only_after_the_commit(acme, allow_private, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "webhooks.tasks.deliver.apply_async", lambda args, kwargs=None, **o: sent.append(args)
    )
    from django.db import transaction

    webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/x")
    with transaction.atomic():
        api_key_create(organisation=acme, name="one")
        assert sent == []
    assert sent == [[Delivery.objects.get().pk]]


def test_a_threshold_is_positive_and_unique(acme):
    from webhooks.services import InvalidThreshold

    spend_threshold_add(organisation=acme, amount=Decimal("10"))
    for bad in ("0", "-1", "abc", "10.00"):
        with pytest.raises(InvalidThreshold):
            spend_threshold_add(organisation=acme, amount=bad)


def test_a_threshold_set_below_this_months_spend_is_crossed_when_it_is_set(acme, add_jobs, small_plan):
    organisation_plan_set(organisation=acme, plan=small_plan)  # 1.00 a job, 10 % off from job 3
    add_jobs([make_job(acme, created_at=at(2025, 4, 1, n)) for n in range(4)])  # 3.80 in April
    assert _events("usage.spend_threshold_crossed") == []

    spend_threshold_add(organisation=acme, amount="3.00")
    spend_threshold_add(organisation=acme, amount="5.00")

    assert _events("usage.spend_threshold_crossed") == ["usage.spend_threshold_crossed:org_acme:2025-04:3.00"]


def test_the_nightly_run_detects_only_when_it_changed_something(acme, add_jobs, small_plan):
    """Every write detects its own events, so a whole-table reconcile that corrects nothing has
    nothing new to find (at 1M jobs that detection was a fifth of the run); one that corrects
    aggregates detects in the same transaction."""
    from usage.models import MonthlyUsage

    organisation_plan_set(organisation=acme, plan=small_plan)
    add_jobs([make_job(acme, created_at=at(2025, 4, 1, n)) for n in range(4)])  # reaches tier2
    assert _events("usage.tier_reached") == ["usage.tier_reached:org_acme:2025-04:tier2"]
    Event.objects.filter(type="usage.tier_reached").delete()  # as if it had never been detected

    assert usage_recompute().rows_corrected == 0
    assert _events("usage.tier_reached") == []

    MonthlyUsage.objects.filter(organisation=acme).update(jobs=0)  # aggregates gone wrong
    assert usage_recompute().rows_corrected > 0
    assert _events("usage.tier_reached") == ["usage.tier_reached:org_acme:2025-04:tier2"]
    assert usage_recompute(organisation_ids=[acme.pk]).rows_corrected == 0  # scoped runs detect
