"""Edits through the admin that change a job's organisation or an organisation's plan."""


from accounts.models import Organisation
from tests.factories import at, make_job
from usage.models import Job, MonthlyUsage, PricingPlan, PricingTier
from usage.services import job_save, organisation_plan_set


def test_moving_a_job_to_another_organisation_refreshes_both(acme, globex, add_jobs):
    add_jobs([make_job(acme, created_at=at(2025, 1, 2), external_id="moved")])
    job = Job.objects.get(external_id="moved")
    job.organisation = globex
    job_save(job=job)
    assert not MonthlyUsage.objects.filter(organisation=acme).exists()
    assert sum(MonthlyUsage.objects.filter(organisation=globex).values_list("jobs", flat=True)) == 1


def test_plan_set_on_an_instance_already_carrying_the_new_plan_retiers(acme, add_jobs):
    plan = PricingPlan.objects.create(name="tiny", transcription_rate=1, note_rate=1)
    PricingTier.objects.create(plan=plan, name="t1", first_rank=1)
    PricingTier.objects.create(plan=plan, name="t2", first_rank=2, discount_percent=50)
    add_jobs([make_job(acme, created_at=at(2025, 1, day)) for day in (1, 2)])
    organisation = Organisation.objects.get(pk=acme.pk)
    organisation.plan = plan  # what a validated ModelForm has done to its instance
    organisation_plan_set(organisation=organisation, plan=plan)
    assert list(Job.objects.order_by("created_at").values_list("tier", flat=True)) == [1, 2]
