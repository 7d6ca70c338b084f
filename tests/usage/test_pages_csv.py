"""The CSV export: the same range and the same figures as the usage report, row by row."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from accounts.services import api_key_create, api_key_revoke
from tests.factories import at, make_job
from tests.portal_data import build_usage_history
from usage.months import format_month
from usage.pricing import present_money, present_percent
from usage.selectors import usage_report
from usage.services import organisation_free_allowance_set

URL = reverse("usage-csv", kwargs={"org_id": "org_acme"})
TODAY = dt.date(2025, 6, 1)


pytestmark = pytest.mark.usefixtures("mid_june_2025")


@pytest.fixture
def history(acme):
    organisation_free_allowance_set(organisation=acme, allowance=25)
    return build_usage_history(
        organisation=acme,
        key_names=["production", "staging", "batch"],
        last_month=TODAY,
        months=8,
        jobs_per_key_month=5,
        growth=3,
        web_jobs_per_month=4,
        calls_per_job=2,
    )


def _rows(response):
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def _usage_columns(report, usage):
    return {
        "jobs": str(usage.jobs),
        "completed_jobs": str(usage.completed_jobs),
        "success_rate_percent": str(present_percent(usage.success_rate_percent)),
        "audio_duration_seconds": str(usage.audio_duration_seconds),
        "transcription_tokens": str(usage.transcription_tokens),
        "note_tokens": str(usage.note_tokens),
        **{f"{name}_jobs": str(usage.tiers[name]) for name in report.plan.tier_names},
        "free_jobs": str(usage.free_jobs),
        "base_cost_USD": str(present_money(usage.base_cost)),
        "final_cost_USD": str(present_money(usage.final_cost)),
        "savings_USD": str(present_money(usage.savings)),
        "effective_discount_percentage": str(present_percent(usage.effective_discount_percentage)),
    }


def test_the_download_is_an_attachment_named_after_the_organisation_and_range(as_member, history):
    response = as_member.get(URL, {"start": "2025-01", "end": "2025-06"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="org_acme-usage-2025-01-2025-06.csv"'


def test_without_a_range_it_exports_the_pages_default(as_member, history):
    response = as_member.get(URL)

    assert response["Content-Disposition"] == 'attachment; filename="org_acme-usage-2024-07-2025-06.csv"'
    months = [row["month_start"] for row in _rows(response) if row["record"] == "month"]
    assert months[0] == "2024-07" and months[-1] == "2025-06" and len(months) == 12


def test_every_figure_equals_the_report(as_member, acme, history):
    api_key_revoke(api_key=history.keys[2])
    start, end = dt.date(2024, 12, 1), TODAY
    report = usage_report(organisation=acme, start_month=start, end_month=end)

    rows = _rows(as_member.get(URL, {"start": "2024-12", "end": "2025-06"}))

    month_rows = [row for row in rows if row["record"] == "month"]
    assert [row["month_start"] for row in month_rows] == [
        format_month(month.month) for month in report.months
    ]
    for row, month in zip(month_rows, report.months, strict=True):
        assert row["month_end"] == row["month_start"]
        assert {key: row[key] for key in _usage_columns(report, month)} == _usage_columns(report, month)
        tier = month.current_tier(report.plan)
        assert row["current_tier"] == tier.name
        assert row["current_tier_discount"] == str(present_percent(tier.discount_percent))
        assert row["jobs_until_next_tier"] == str(month.jobs_until_next_tier(report.plan))
        assert row["api_calls"] == str(month.api_calls)
        assert row["api_key_name"] == row["api_key_prefix"] == row["api_key_status"] == ""

    key_rows = [row for row in rows if row["record"] == "api_key"]
    expected = [
        (name, month, usage)
        for name, key_usage in report.keys.items()
        for month, usage in sorted(key_usage.months.items())
    ]
    assert [(row["api_key_name"], row["month_start"]) for row in key_rows] == [
        (name, format_month(month)) for name, month, _ in expected
    ]
    for row, (name, month, usage) in zip(key_rows, expected, strict=True):
        api_key = report.keys[name].api_key
        assert row["month_end"] == row["month_start"] == format_month(month)
        assert row["api_key_prefix"] == api_key.prefix
        assert row["api_key_status"] == ("revoked" if api_key.is_revoked else "active")
        assert {key: row[key] for key in _usage_columns(report, usage)} == _usage_columns(report, usage)
    assert {row["api_key_status"] for row in key_rows if row["api_key_name"] == history.keys[2].name} == {
        "revoked"
    }
    for name, key_usage in report.keys.items():  # the key-months add up to the key's range figures
        assert sum(int(row["jobs"]) for row in key_rows if row["api_key_name"] == name) == key_usage.jobs

    web_rows = [row for row in rows if row["record"] == "web"]
    assert [row["month_start"] for row in web_rows] == [
        format_month(month) for month in sorted(report.web.months)
    ]
    for row, usage in zip(
        web_rows, [report.web.months[month] for month in sorted(report.web.months)], strict=True
    ):
        assert {key: row[key] for key in _usage_columns(report, usage)} == _usage_columns(report, usage)
    language_rows = [row for row in rows if row["record"] == "language"]
    assert {row["language"]: row["jobs"] for row in language_rows} == {
        language: str(jobs) for language, jobs in report.languages.items()
    }
    (total,) = [row for row in rows if row["record"] == "total"]
    assert {key: total[key] for key in _usage_columns(report, report.totals)} == _usage_columns(
        report, report.totals
    )
    assert total["api_calls"] == str(report.api_calls)
    assert len(rows) == len(month_rows) + len(key_rows) + len(web_rows) + len(language_rows) + 1


def test_the_rows_add_up_to_the_totals(as_member, acme, history):
    rows = _rows(as_member.get(URL, {"start": "2025-01", "end": "2025-06"}))
    report = usage_report(organisation=acme, start_month=dt.date(2025, 1, 1), end_month=TODAY)

    months = [row for row in rows if row["record"] == "month"]
    sources = [row for row in rows if row["record"] in {"api_key", "web"}]
    assert sum(int(row["jobs"]) for row in months) == report.totals.jobs
    assert sum(int(row["jobs"]) for row in sources) == report.totals.jobs
    assert sum(int(row["api_calls"]) for row in months) == report.api_calls


def test_a_month_in_the_last_tier_has_no_next_tier(as_member, acme, add_jobs):
    from usage.models import PricingPlan, PricingTier
    from usage.services import organisation_plan_set

    plan = PricingPlan.objects.create(name="tiny", transcription_rate=1, note_rate=1)
    PricingTier.objects.create(plan=plan, name="only", first_rank=1, discount_percent=5)
    organisation_plan_set(organisation=acme, plan=plan)
    add_jobs([make_job(acme, created_at=at(2025, 6, 1))])

    (june,) = [row for row in _rows(as_member.get(URL, {"start": "2025-06"})) if row["record"] == "month"]

    assert (june["current_tier"], june["current_tier_discount"], june["jobs_until_next_tier"]) == (
        "only",
        "5.00",
        "",
    )
    assert "only_jobs" in june


def test_a_key_name_cannot_smuggle_a_spreadsheet_formula(as_member, acme, add_jobs):
    key = api_key_create(organisation=acme, name='=HYPERLINK("http://x")').api_key
    add_jobs([make_job(acme, created_at=at(2025, 6, 1), api_key=key)])

    (row,) = [row for row in _rows(as_member.get(URL)) if row["record"] == "api_key"]

    assert row["api_key_name"] == '\'=HYPERLINK("http://x")'


def test_an_empty_range_still_has_its_header_and_months(as_member, acme):
    rows = _rows(as_member.get(URL, {"start": "2025-05", "end": "2025-06"}))

    assert [(row["record"], row["month_start"], row["jobs"]) for row in rows] == [
        ("month", "2025-05", "0"),
        ("month", "2025-06", "0"),
        ("total", "2025-05", "0"),
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2025-13"}, "Enter a month as YYYY-MM"),
        ({"start": "2025-06", "end": "2025-05"}, "must not be after the last month"),
        ({"end": "2025-07"}, "only known up to the current month"),
    ],
)
def test_a_bad_range_is_a_plain_400(as_member, acme, query, message):
    response = as_member.get(URL, query)

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "Content-Disposition" not in response
    assert message in response.content.decode()


CSV_QUERIES = 10


@pytest.mark.parametrize("months", [1, 24])
@pytest.mark.parametrize("keys", [1, 15])
def test_the_export_query_count_does_not_grow_with_the_data(
    as_member, acme, months, keys, django_assert_num_queries
):
    organisation_free_allowance_set(organisation=acme, allowance=3)
    build_usage_history(
        organisation=acme,
        key_names=[f"k{index}" for index in range(keys)],
        last_month=TODAY,
        months=months,
        jobs_per_key_month=2,
        web_jobs_per_month=1,
        calls_per_job=1,
    )

    with django_assert_num_queries(CSV_QUERIES):
        response = as_member.get(URL, {"start": "2023-07", "end": "2025-06"})

    # 24 month rows, one row per key-month and per web month with jobs, the languages, the total.
    rows = _rows(response)
    languages = sum(1 for row in rows if row["record"] == "language")
    assert len(rows) == 24 + keys * months + months + languages + 1
