"""/usage caches its body under the organisation's usage version: every change shows at once."""

import datetime as dt
from decimal import Decimal

import pytest

from accounts.models import ApiKey, Organisation
from portal.api.renderers import ExactJSONRenderer
from tests.factories import at, make_job
from usage.api import serializers
from usage.engine.recompute import usage_recompute
from usage.models import PricingPlan, PricingTier
from usage.selectors import usage_version
from usage.services import (
    job_delete,
    jobs_upsert,
    organisation_free_allowance_set,
    organisation_plan_set,
    pricing_plan_changed,
)

PERIOD = {"start_month": "2025-01", "end_month": "2025-02"}


@pytest.fixture
def read(client, acme_key, settings):
    settings.API_THROTTLE_RATE = "100000/min"

    def get():
        response = client.get("/usage", PERIOD, headers={"Authorization": f"Bearer {acme_key.plaintext}"})
        assert response.status_code == 200
        return response.json()

    return get


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(dt.datetime(2025, 3, 10, tzinfo=dt.UTC), tick=False)


def test_a_job_written_after_a_cached_read_shows_at_the_next_request(clock, acme, acme_key, add_jobs, read):
    add_jobs([make_job(acme, created_at=at(2025, 1, 5), api_key=acme_key.api_key)])
    assert read()["totals"]["jobs"] == 1
    assert read()["totals"]["jobs"] == 1  # served from the cache
    # Written without any refresh by the writer: the read resolves the stale month and the version.
    jobs_upsert(jobs=[make_job(acme, created_at=at(2025, 2, 1), api_key=acme_key.api_key)])
    body = read()
    assert body["totals"]["jobs"] == 2
    assert [month["jobs"] for month in body["monthly_breakdown"]] == [1, 1]


def test_deleting_a_job_and_a_repairing_recompute_show_at_once(clock, acme, acme_key, add_jobs, read):
    add_jobs([make_job(acme, created_at=at(2025, 1, day), external_id=f"d-{day}") for day in (1, 2)])
    assert read()["totals"]["jobs"] == 2
    from usage.models import Job, MonthlyUsage

    job_delete(job=Job.objects.get(external_id="d-1"))
    assert read()["totals"]["jobs"] == 1
    MonthlyUsage.objects.all().delete()  # damage behind the portal's back, then repaired
    usage_recompute()
    assert read()["totals"]["jobs"] == 1


def test_allowance_plan_and_price_changes_show_at_once(clock, acme, acme_key, add_jobs, read):
    add_jobs([make_job(acme, created_at=at(2025, 1, day), api_key=acme_key.api_key) for day in (1, 2, 3)])
    assert read()["totals"]["free_jobs_left"] == 0
    organisation_free_allowance_set(organisation=acme, allowance=5)
    body = read()
    assert (body["totals"]["free_jobs_left"], body["totals"]["final_cost"]) == (2, 0)

    plan = PricingPlan.objects.create(name="gold", transcription_rate=Decimal("1"), note_rate=Decimal("1"))
    PricingTier.objects.create(plan=plan, name="only", first_rank=1)
    organisation_plan_set(organisation=acme, plan=plan)
    assert list(read()["monthly_breakdown"][0]["tiers"]) == ["only"]

    plan.transcription_rate = Decimal("2")
    plan.save()
    pricing_plan_changed(plan_id=plan.pk)
    assert read()["totals"]["base_cost"] == 1.2  # 3 jobs x (100 x 2 + 200 x 1) / 1000


def test_renaming_a_key_in_the_admin_shows_at_once(clock, acme, acme_key, add_jobs, read, admin_client):
    add_jobs([make_job(acme, created_at=at(2025, 1, 5), api_key=acme_key.api_key)])
    assert list(read()["api_keys"]) == ["some api key"]
    api_key = ApiKey.objects.get(pk=acme_key.api_key.pk)
    response = admin_client.post(
        f"/admin/accounts/apikey/{api_key.pk}/change/", {"name": "renamed", "organisation": acme.pk}
    )
    assert response.status_code == 302, response.content[:500]
    assert list(read()["api_keys"]) == ["renamed"]


def test_a_job_written_without_a_refresh_shows_in_the_all_time_usage_at_the_next_request(
    clock, acme, acme_key, add_jobs, client
):
    header = {"Authorization": f"Bearer {acme_key.plaintext}"}
    add_jobs([make_job(acme, created_at=at(2025, 1, 5), api_key=acme_key.api_key)])
    assert client.get("/api/v1/usage", headers=header).json()["total_jobs"] == 1
    jobs_upsert(jobs=[make_job(acme, created_at=at(2025, 2, 1), api_key=acme_key.api_key)])

    assert client.get("/api/v1/usage", headers=header).json()["total_jobs"] == 2


def test_the_cached_body_is_sent_as_stored_without_rendering_it_again(
    clock, acme, acme_key, add_jobs, read, client, monkeypatch
):
    add_jobs([make_job(acme, created_at=at(2025, 1, 5), api_key=acme_key.api_key)])
    first = client.get("/usage", PERIOD, headers={"Authorization": f"Bearer {acme_key.plaintext}"})

    def no_rendering(*args, **kwargs):
        raise AssertionError("a cached body was built or rendered again")

    monkeypatch.setattr(serializers, "monthly_usage_data", no_rendering)
    monkeypatch.setattr(ExactJSONRenderer, "render", no_rendering)
    again = client.get("/usage", PERIOD, headers={"Authorization": f"Bearer {acme_key.plaintext}"})

    assert again.status_code == 200
    assert again.content == first.content
    assert again["Content-Type"] == "application/json"
    assert again.json()["totals"]["jobs"] == 1


def test_marks_resolved_by_another_read_meanwhile_still_give_the_current_version(acme, add_jobs):
    """The key check saw stale marks with version v; another read resolved them (v + 1) before
    this one looked: the version is read again, never the v of the key check."""
    add_jobs([make_job(acme, created_at=at(2025, 1, 5))])
    seen = Organisation.objects.get(pk=acme.pk)  # as loaded by the key check, marks present
    jobs_upsert(jobs=[make_job(acme, created_at=at(2025, 1, 6))])
    usage_version(organisation=Organisation.objects.get(pk=acme.pk))  # the other read resolves them
    current = Organisation.objects.get(pk=acme.pk).usage_version
    assert current > seen.usage_version

    assert usage_version(organisation=seen, stale_marks=True) == current


def test_no_stale_mark_seen_with_the_organisation_trusts_its_version_with_no_query(
    acme, django_assert_num_queries
):
    seen = Organisation.objects.get(pk=acme.pk)

    with django_assert_num_queries(0):
        assert usage_version(organisation=seen, stale_marks=False) == seen.usage_version
