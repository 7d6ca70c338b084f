"""Failing cases found while building the admin, in lead-owned ``usage.services``.

Each is marked ``xfail(strict=True)``: fixing the service makes it pass, and the strict mark then
fails the suite so the mark gets removed. The admin already steers clear of both.
"""

import pytest

from accounts.models import Organisation
from tests.conftest import at, make_job
from usage.models import Job, MonthlyUsage, PricingPlan, PricingTier
from usage.services import job_save, organisation_plan_set


@pytest.mark.xfail(
    strict=True,
    reason="job_save marks only the job's new organisation stale; the old one keeps counting the job "
    "(the admin makes a job's organisation read-only)",
)
def test_moving_a_job_to_another_organisation_refreshes_both(acme, globex, add_jobs):
    add_jobs([make_job(acme, created_at=at(2025, 1, 2), external_id="moved")])
    job = Job.objects.get(external_id="moved")
    job.organisation = globex
    job_save(job=job)
    assert not MonthlyUsage.objects.filter(organisation=acme).exists()
    assert sum(MonthlyUsage.objects.filter(organisation=globex).values_list("jobs", flat=True)) == 1


@pytest.mark.xfail(
    strict=True,
    reason="organisation_plan_set compares the new ladder with organisation.plan_id as passed, not as "
    "stored; an instance whose plan was already assigned (a ModelForm's) is never re-tiered "
    "(the admin passes the stored plan_id)",
)
def test_plan_set_on_an_instance_already_carrying_the_new_plan_retiers(acme, add_jobs):
    plan = PricingPlan.objects.create(name="tiny", transcription_rate=1, note_rate=1)
    PricingTier.objects.create(plan=plan, name="t1", first_rank=1)
    PricingTier.objects.create(plan=plan, name="t2", first_rank=2, discount_percent=50)
    add_jobs([make_job(acme, created_at=at(2025, 1, day)) for day in (1, 2)])
    organisation = Organisation.objects.get(pk=acme.pk)
    organisation.plan = plan  # what a validated ModelForm has done to its instance
    organisation_plan_set(organisation=organisation, plan=plan)
    assert list(Job.objects.order_by("created_at").values_list("tier", flat=True)) == [1, 2]
