"""``month_costs``, the spend alerts' batch read, gives every organisation-month exactly the final
cost ``usage_report`` shows for it, whatever the plan, tiers and free jobs."""

import datetime as dt
from decimal import Decimal

from accounts.services import organisation_create
from tests.factories import at, make_job
from usage.models import PricingPlan, PricingTier
from usage.selectors import month_costs, usage_report
from usage.services import organisation_free_allowance_set, organisation_plan_set

JAN, FEB, MAR = dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)


def _small_plan() -> PricingPlan:
    plan = PricingPlan.objects.create(
        name="small",
        per_job_fee=Decimal("0.003"),
        transcription_rate=Decimal("0.07"),
        note_rate=Decimal("0.11"),
    )
    for name, first_rank, discount in (("tier1", 1, "0"), ("tier2", 3, "12.5"), ("tier3", 6, "40")):
        PricingTier.objects.create(
            plan=plan, name=name, first_rank=first_rank, discount_percent=Decimal(discount)
        )
    return plan


def test_month_costs_equal_the_reports_final_cost_of_each_month(add_jobs, acme, acme_key, globex):
    initech = organisation_create(name="Initech", org_id="org_initech")
    organisation_plan_set(organisation=globex, plan=_small_plan())
    organisation_free_allowance_set(organisation=acme, allowance=3)
    jobs = []
    for organisation in (acme, globex, initech):
        for index in range(9):
            jobs.append(
                make_job(
                    organisation,
                    created_at=at(2025, 1 + index % 2, 1 + index, hour=index),
                    api_key=acme_key.api_key if organisation == acme and index % 3 else None,
                    transcription_tokens=137 * index + 11,
                    note_tokens=53 * index,
                )
            )
    add_jobs(jobs)
    organisations = {organisation.pk: organisation for organisation in (acme, globex, initech)}
    months = {acme.pk: [JAN, FEB, MAR], globex.pk: [JAN, FEB], initech.pk: [FEB]}

    costs = month_costs(organisations=organisations, months=months)

    expected = {}
    for pk, listed in months.items():
        report = usage_report(organisation=organisations[pk], start_month=JAN, end_month=MAR)
        for month in report.months:
            if month.month in listed:
                expected[(pk, month.month)] = month.final_cost
    assert costs == expected
    assert costs[(acme.pk, MAR)] == 0  # a month without jobs
    assert costs[(globex.pk, JAN)] > 0 and costs[(acme.pk, JAN)] > 0
    assert month_costs(organisations=organisations, months={}) == {}
