"""The daily view: the DailyUsage aggregate equals the jobs' grouping by UTC day whatever writes
happened, and the days of a month add up exactly to the month of the usage report."""

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from tests.factories import at, make_job
from usage.engine.recompute import usage_recompute
from usage.models import DailyUsage, Job
from usage.selectors import usage_daily, usage_report
from usage.services import job_delete, job_save, organisation_free_allowance_set, organisation_plan_set

from .test_engine import small_plan

PAGE = reverse("usage-page", kwargs={"org_id": "org_acme"})

# Around midnight UTC and month ends, so a wrong day expression shows.
MOMENTS = [
    at(2025, 1, 1, 0, 0, 0),
    at(2025, 1, 1, 23, 59, 59),
    at(2025, 1, 2, 0, 0, 0),
    at(2025, 1, 15, 12),
    at(2025, 1, 31, 23, 59, 59),
    at(2025, 2, 1, 0, 0, 0),
    at(2025, 2, 28, 23, 59, 59),
]
STATUSES = ["completed", "failed", "queued", "processing"]


def _daily_rows():
    return Counter(
        {
            (row.organisation_id, row.day, row.tier, row.is_free): (
                row.jobs,
                row.transcription_tokens,
                row.note_tokens,
                row.completed_status_jobs,
                row.failed_jobs,
                row.queued_jobs,
                row.processing_jobs,
            )
            for row in DailyUsage.objects.all()
        }
    )


def _reference_rows():
    """The jobs grouped by UTC day, tier and free flag, in Python."""
    groups: dict[tuple, list[int]] = {}
    for job in Job.objects.all():
        day = job.created_at.astimezone(dt.UTC).date()
        assert job.month == day.replace(day=1)
        counts = groups.setdefault((job.organisation_id, day, job.tier, job.is_free), [0] * 7)
        counts[0] += 1
        counts[1] += job.transcription_tokens
        counts[2] += job.note_tokens
        counts[3 + STATUSES.index(job.status)] += 1
    return Counter({key: tuple(counts) for key, counts in groups.items()})


@pytest.fixture
def busy_acme(acme, acme_key, add_jobs):
    organisation_plan_set(organisation=acme, plan=small_plan())
    organisation_free_allowance_set(organisation=acme, allowance=3)
    add_jobs(
        make_job(
            acme,
            created_at=MOMENTS[index % len(MOMENTS)],
            api_key=acme_key.api_key if index % 3 else None,
            status=STATUSES[index % 4],
            transcription_tokens=index * 37,
            note_tokens=index * 11 % 97,
        )
        for index in range(40)
    )
    return acme


def test_the_daily_aggregate_equals_the_jobs_grouped_by_utc_day(busy_acme):
    assert _daily_rows() == _reference_rows()
    assert {row.day for row in DailyUsage.objects.all()} == {moment.date() for moment in MOMENTS}


@pytest.mark.parametrize("month", [dt.date(2025, 1, 1), dt.date(2025, 2, 1)])
def test_the_days_add_up_exactly_to_the_month(busy_acme, month):
    daily = usage_daily(organisation=busy_acme, month=month)
    (report_month,) = usage_report(organisation=busy_acme, start_month=month, end_month=month).months

    assert len(daily.days) == (31 if month.month == 1 else 28)
    assert sum(day.jobs for day in daily.days) == daily.totals.jobs == report_month.jobs
    assert sum((day.final_cost for day in daily.days), Decimal(0)) == report_month.final_cost
    assert daily.totals.final_cost == report_month.final_cost
    assert daily.totals.base_cost == report_month.base_cost
    assert report_month.final_cost < report_month.base_cost  # tiers and free jobs are in play
    assert sum(daily.totals.statuses.values()) == report_month.jobs


def test_the_daily_aggregate_follows_imports_edits_and_deletes(busy_acme, add_jobs):
    add_jobs([make_job(busy_acme, created_at=at(2025, 1, 20, 5), status="failed")])
    assert _daily_rows() == _reference_rows()

    job = Job.objects.filter(created_at=at(2025, 1, 15, 12)).first()
    job.created_at = at(2025, 2, 3, 23, 30)
    job.status = "queued"
    job_save(job=job)
    assert _daily_rows() == _reference_rows()

    job_delete(job=Job.objects.filter(created_at=at(2025, 1, 1, 0, 0, 0)).first())
    assert _daily_rows() == _reference_rows()
    for month in (dt.date(2025, 1, 1), dt.date(2025, 2, 1)):
        daily = usage_daily(organisation=busy_acme, month=month)
        (report_month,) = usage_report(organisation=busy_acme, start_month=month, end_month=month).months
        assert (daily.totals.jobs, daily.totals.final_cost) == (report_month.jobs, report_month.final_cost)


def test_the_recompute_repairs_the_daily_aggregate(busy_acme):
    snapshot = _daily_rows()
    DailyUsage.objects.filter(day=dt.date(2025, 1, 1)).delete()
    DailyUsage.objects.filter(day=dt.date(2025, 1, 2)).update(jobs=999)
    DailyUsage.objects.create(
        organisation=busy_acme,
        month=dt.date(2020, 1, 1),
        day=dt.date(2020, 1, 5),
        tier=1,
        is_free=False,
        jobs=1,
        transcription_tokens=0,
        note_tokens=0,
        queued_jobs=0,
        processing_jobs=0,
        completed_status_jobs=1,
        failed_jobs=0,
    )

    usage_recompute(organisation_ids=[busy_acme.pk])

    assert _daily_rows() == snapshot
    assert usage_recompute().rows_corrected == 0


def test_the_nightly_reconcile_repairs_daily_rows_whose_month_still_adds_up(busy_acme):
    """Errors that leave every monthly figure right: a job counted on the wrong day, and a status
    counted as another. Only a check of the daily rows against the jobs finds them."""
    snapshot = _daily_rows()
    january = DailyUsage.objects.filter(month=dt.date(2025, 1, 1)).order_by("day", "tier", "is_free")
    first, second = next(
        (a, b)
        for a in january
        for b in january
        if (a.tier, a.is_free) == (b.tier, b.is_free)
        and a.day != b.day
        and b.completed_status_jobs > 0
        and b.transcription_tokens >= 7
    )
    first.jobs += 1
    first.completed_status_jobs += 1
    first.transcription_tokens += 7
    second.jobs -= 1
    second.completed_status_jobs -= 1
    second.transcription_tokens -= 7
    DailyUsage.objects.bulk_update([first, second], ["jobs", "completed_status_jobs", "transcription_tokens"])
    third = DailyUsage.objects.filter(month=dt.date(2025, 2, 1), completed_status_jobs__gt=0).first()
    third.completed_status_jobs -= 1
    third.failed_jobs += 1
    third.save()
    assert _daily_rows() != snapshot

    result = usage_recompute()

    assert _daily_rows() == snapshot == _reference_rows()
    assert result.rows_corrected == 3
    assert usage_recompute().rows_corrected == 0


def test_the_usage_page_shows_the_chosen_months_days(client, member, busy_acme):
    client.force_login(member)
    with time_machine.travel(dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC), tick=False):
        response = client.get(PAGE, {"start": "2025-01", "end": "2025-03", "day_month": "2025-01"})
    page = response.content.decode()
    daily = response.context["daily"].report
    (january,) = usage_report(
        organisation=busy_acme, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 1, 1)
    ).months

    assert response.status_code == 200
    assert daily.month == dt.date(2025, 1, 1)
    assert page.count('<tr data-day="2025-01-') == 31
    assert "Daily usage · January 2025" in page
    assert daily.totals.final_cost == january.final_cost
    total_row = page[page.index('id="daily-total"') :]
    assert f"{january.jobs:,}" in total_row[: total_row.index("</tr>")]
    assert 'id="daily-jobs-chart-wide"' in page and 'id="daily-cost-chart-wide"' in page


def test_the_daily_view_defaults_to_the_ranges_last_month_up_to_today(client, member, busy_acme):
    client.force_login(member)
    with time_machine.travel(dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC), tick=False):
        response = client.get(PAGE)

    assert response.context["daily"].report.month == dt.date(2025, 3, 1)
    assert len(response.context["daily"].report.days) == 10
    assert "Today so far" in response.content.decode()


@pytest.mark.parametrize("value", ["2025-13", "2026-01", "garbage"])
def test_a_bad_daily_month_falls_back_and_says_why(client, member, busy_acme, value):
    client.force_login(member)
    with time_machine.travel(dt.datetime(2025, 2, 10, 12, tzinfo=dt.UTC), tick=False):
        response = client.get(PAGE, {"day_month": value})

    assert response.status_code == 200
    assert response.context["daily"].report.month == dt.date(2025, 2, 1)
    assert 'id="daily-errors"' in response.content.decode()


def test_the_page_labels_say_what_they_count_and_offer_all_time(client, member, busy_acme):
    client.force_login(member)
    with time_machine.travel(dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC), tick=False):
        response = client.get(PAGE)
    page = response.content.decode()
    statuses = response.context["statuses"]

    assert 'Completed jobs <span class="dt-note">(transcript and LRC)</span>' in page
    assert 'API calls <span class="dt-note">(requests to this portal\'s API)</span>' in page
    assert '<a href="?start=2025-01&amp;end=2025-03">All time</a>' in page
    assert statuses == {"completed": 10, "failed": 10, "queued": 10, "processing": 10}
    assert f'id="status-failed">{statuses["failed"]}<' in page
    assert 'href="/api/docs/"' in page
