"""The usage page: range picker, summary, chart, tables and empty state, all from ``usage_report``."""

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse

from accounts.services import api_key_revoke
from tests.factories import at, make_job
from tests.portal_data import build_usage_history
from usage.months import add_months, format_month
from usage.pricing import present_money, present_money_in, present_percent
from usage.selectors import usage_report
from usage.services import organisation_free_allowance_set

URL = reverse("usage-page", kwargs={"org_id": "org_acme"})
TODAY = dt.date(2025, 6, 1)


pytestmark = pytest.mark.usefixtures("mid_june_2025")


@pytest.fixture
def history(acme):
    organisation_free_allowance_set(organisation=acme, allowance=30)
    return build_usage_history(
        organisation=acme,
        key_names=["production", "staging"],
        last_month=TODAY,
        months=12,
        jobs_per_key_month=6,
        growth=2,
        web_jobs_per_month=3,
        calls_per_job=2,
    )


def _report(acme, start, end):
    return usage_report(organisation=acme, start_month=start, end_month=end)


def _money(amount):
    return f"{present_money(amount):,f}"


def _by_id(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert match, element_id
    return match.group(1)


# The range picker


def test_the_default_range_is_the_last_twelve_months_through_this_one(as_member, history):
    response = as_member.get(URL)

    page = response.context["page"]
    assert response.status_code == 200
    assert page.report.start_month == dt.date(2024, 7, 1)
    assert page.report.end_month == TODAY
    assert len(page.months) == 12
    assert 'value="2024-07"' in response.content.decode()
    assert 'value="2025-06"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ({"start": "2025-01", "end": "2025-03"}, dt.date(2025, 1, 1), dt.date(2025, 3, 1)),
        ({"start": "2025-06", "end": "2025-06"}, TODAY, TODAY),
        ({"start": "2024-02"}, dt.date(2024, 2, 1), TODAY),
        ({"end": "2025-02"}, dt.date(2024, 3, 1), dt.date(2025, 2, 1)),
        ({"start": "", "end": ""}, dt.date(2024, 7, 1), TODAY),
        (
            {"start": "2025-04", "end": "2025-05", "utm_source": "mail"},
            dt.date(2025, 4, 1),
            dt.date(2025, 5, 1),
        ),
        ({"start": "2015-07", "end": "2025-06"}, dt.date(2015, 7, 1), TODAY),
    ],
)
def test_a_range_from_the_url(as_member, history, query, start, end):
    response = as_member.get(URL, query)

    assert response.status_code == 200
    report = response.context["page"].report
    assert (report.start_month, report.end_month) == (start, end)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2025-13"}, "Enter a month as YYYY-MM"),
        ({"start": "June", "end": "2025-06"}, "Enter a month as YYYY-MM"),
        ({"end": "2025-6"}, "Enter a month as YYYY-MM"),
        ({"start": "0000-01"}, "Enter a month as YYYY-MM"),
        ({"start": "2025-05", "end": "2025-04"}, "must not be after the last month"),
        ({"start": "2025-05", "end": "2025-07"}, "only known up to the current month (2025-06)"),
        ({"start": "2015-06", "end": "2025-06"}, "at most 120 months"),
        ({"start": "9999-99"}, "Enter a month as YYYY-MM"),
    ],
)
def test_a_bad_range_is_a_friendly_form_error(as_member, history, query, message):
    response = as_member.get(URL, query)

    page = response.content.decode()
    assert response.status_code == 400
    assert response.context["page"] is None
    assert message in page
    assert 'id="range-errors"' in page
    assert "That period can't be shown" in page


def test_the_range_is_shareable_as_a_plain_url(as_member, history):
    page = as_member.get(URL, {"start": "2025-01", "end": "2025-03"}).content.decode()

    assert 'method="get"' in page
    assert 'name="start"' in page and 'name="end"' in page
    csv_url = reverse("usage-csv", kwargs={"org_id": "org_acme"}) + "?start=2025-01&amp;end=2025-03"
    assert csv_url in page


def test_quick_periods_link_to_their_ranges_and_mark_the_one_in_use(as_member, history):
    page = as_member.get(URL, {"start": "2025-04", "end": "2025-06"}).content.decode()

    assert '<a href="?start=2025-04&amp;end=2025-06" aria-current="true">3 months</a>' in page
    assert '<a href="?start=2023-07&amp;end=2025-06">24 months</a>' in page
    assert '<a href="?start=2025-01&amp;end=2025-06">6 months</a>' in page
    assert "This year" not in page


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (dt.datetime(2025, 1, 1, 0, 0, tzinfo=dt.UTC), dt.date(2024, 2, 1), dt.date(2025, 1, 1)),
        (dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.UTC), dt.date(2024, 1, 1), dt.date(2024, 12, 1)),
    ],
)
def test_the_default_range_follows_utc_months_across_a_year_boundary(client, member, now, start, end):
    with time_machine.travel(now, tick=False):
        client.force_login(member)
        report = client.get(URL).context["page"].report

    assert (report.start_month, report.end_month) == (start, end)


# What the page shows


def test_the_summary_cards_show_the_report_totals(as_member, acme, history):
    page = as_member.get(URL).content.decode()
    report = _report(acme, dt.date(2024, 7, 1), TODAY)
    totals = report.totals

    assert _by_id(page, "total-jobs") == f"{totals.jobs:,}"
    assert _by_id(page, "total-completed") == f"{totals.completed_jobs:,}"
    assert f"{present_percent(totals.success_rate_percent)}% success rate" in page
    assert _by_id(page, "total-audio") == f"{totals.audio_duration_seconds / 3600:,.1f} h"
    assert _by_id(page, "total-transcription-tokens") == f"{totals.transcription_tokens:,}"
    assert _by_id(page, "total-note-tokens") == f"{totals.note_tokens:,}"
    for element_id, amount in (
        ("total-base-cost", totals.base_cost),
        ("total-final-cost", totals.final_cost),
        ("total-savings", totals.savings),
    ):
        shown = re.search(rf'id="{element_id}"><span class="money" title="([^"]*)">([^<]*)<', page)
        assert shown.groups() == (f"{_money(amount)} USD", present_money_in(amount, currency="USD"))
    assert f"{present_percent(totals.effective_discount_percentage)}%</span> effective discount" in page
    assert _by_id(page, "total-api-calls") == f"{report.api_calls:,}"
    assert _by_id(page, "free-jobs-left") == str(report.free_jobs_left)
    assert totals.jobs > 0 and report.api_calls > 0 and totals.savings > 0


def test_free_jobs_left_shows_the_allowance_not_yet_used(as_member, acme, history):
    organisation_free_allowance_set(organisation=acme, allowance=history.jobs + 7)

    page = as_member.get(URL).content.decode()

    assert _by_id(page, "free-jobs-left") == "7"


def test_the_monthly_table_has_every_month_newest_first_with_tiers(as_member, acme, history):
    response = as_member.get(URL, {"start": "2025-01", "end": "2025-06"})
    page = response.content.decode()
    report = _report(acme, dt.date(2025, 1, 1), TODAY)

    months = re.findall(r'<tr data-month="(\d{4}-\d{2})"', page)
    assert months == ["2025-06", "2025-05", "2025-04", "2025-03", "2025-02", "2025-01"]
    for name in report.plan.tier_names:
        assert f'<th scope="col" class="num">{name}</th>' in page
    for month in report.months:
        row = page[page.index(f'data-month="{format_month(month.month)}"') :]
        row = row[: row.index("</tr>")]
        assert f">{month.jobs:,}<" in row
        assert _money(month.final_cost) in row
        assert _money(month.base_cost) in row
        assert f"{month.current_tier(report.plan).name} · " in row


def test_the_current_month_shows_its_tier_and_the_jobs_left_to_the_next(client, member, acme, add_jobs):
    add_jobs(
        make_job(acme, created_at=at(2025, 6, 2, 0, minute % 60, minute // 60)) for minute in range(1003)
    )
    client.force_login(member)

    page = client.get(URL).content.decode()
    report = _report(acme, TODAY, TODAY)
    june = report.months[0]

    assert june.current_tier(report.plan).name == "tier2"
    assert june.jobs_until_next_tier(report.plan) == 10_000 - 1_003
    assert "1,003 jobs · tier2 (10.00% discount)" in page
    assert "8,997 more jobs this month before tier3: from job 10,001 of the month on" in page
    assert "8,997 before tier3" in page


def test_the_current_month_box_is_left_out_when_the_range_ends_earlier(as_member, history):
    page = as_member.get(URL, {"start": "2025-01", "end": "2025-05"}).content.decode()

    assert 'id="tier-status"' not in page


def test_the_key_table_lists_keys_with_jobs_then_the_web_jobs(as_member, acme, history):
    api_key_revoke(api_key=history.keys[1])

    page = as_member.get(URL).content.decode()
    report = _report(acme, dt.date(2024, 7, 1), TODAY)

    keys = re.findall(r'<tr data-key="([^"]+)"', page)
    assert keys == ["production", "staging", "web"]
    for name, usage in report.keys.items():
        row = page[page.index(f'data-key="{name}"') :]
        row = row[: row.index("</tr>")]
        assert f">{usage.jobs:,}<" in row
        assert _money(usage.final_cost) in row
        assert usage.api_key.prefix in row
    staging = page[page.index('data-key="staging"') :]
    assert "Revoked" in staging[: staging.index("</tr>")]
    web = page[page.index('data-key="web"') :]
    assert f">{report.web.jobs:,}<" in web[: web.index("</tr>")]


def test_jobs_by_language_most_used_first(as_member, acme, history):
    page = as_member.get(URL).content.decode()
    report = _report(acme, dt.date(2024, 7, 1), TODAY)

    table = page[page.index('id="languages-table"') :]
    shown = re.findall(r'<th scope="row">(?:<a [^>]*>)?([^<]+)', table[: table.index("</table>")])
    assert shown == list(report.languages)
    assert sum(report.languages.values()) == report.totals.jobs


def test_the_chart_is_inline_svg_with_accessible_labels(as_member, acme, history):
    page = as_member.get(URL).content.decode()

    # No chart library: the only script is the portal's own menu script, for every page.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/js/portal.js">']
    svgs = re.findall(r"<svg class=\"chart-(?:wide|narrow)\"[^>]*>.*?</svg>", page, flags=re.S)
    assert len(svgs) == 8  # the monthly charts, then the daily view's
    svgs = svgs[:4]
    for svg in svgs:
        assert 'role="img"' in svg
        title_id = re.search(r'aria-labelledby="([^"]+)"', svg).group(1)
        desc_id = re.search(r'aria-describedby="([^"]+)"', svg).group(1)
        assert f'<title id="{title_id}">' in svg
        assert f'<desc id="{desc_id}">Bar chart of' in svg
        assert svg.count("<title>") == 12
    jobs_wide = svgs[0]
    assert re.search(r'<title id="jobs-chart-wide-title">Jobs per month</title>', jobs_wide)
    assert "<title>Jun 2025 (so far): " in jobs_wide
    assert "<title>Jul 2024: " in jobs_wide
    assert "Cost per month" in svgs[2]
    assert "base cost" in svgs[2]


def test_chart_bars_are_proportional_to_the_monthly_jobs(as_member, acme, history):
    response = as_member.get(URL)
    chart = response.context["page"].jobs_chart.wide
    months = response.context["page"].months

    heights = [bar.bar.height for bar in chart.bars]
    busiest = max(range(len(months)), key=lambda index: months[index].usage.jobs)
    for bar, row in zip(chart.bars, months, strict=True):
        expected = heights[busiest] * row.usage.jobs / months[busiest].usage.jobs
        assert bar.bar.height == pytest.approx(expected, abs=0.02)


def test_an_organisation_with_no_usage_gets_a_friendly_empty_state(as_member, acme):
    response = as_member.get(URL)
    page = response.content.decode()

    assert response.status_code == 200
    assert 'id="empty-state"' in page
    assert "No usage in this period" in page
    assert 'id="summary"' not in page
    assert '<svg class="chart-' not in page
    assert reverse("api-keys", kwargs={"org_id": "org_acme"}) in page


def test_a_period_without_jobs_but_with_api_calls_is_not_empty(as_member, acme, acme_key):
    from usage.models import ApiCallCount

    ApiCallCount.objects.create(api_key=acme_key.api_key, organisation=acme, month=TODAY, calls=5)

    page = as_member.get(URL).content.decode()

    assert 'id="empty-state"' not in page
    assert _by_id(page, "total-api-calls") == "5"


def test_another_organisations_usage_never_shows(as_member, acme, globex, history, add_jobs):
    add_jobs([make_job(globex, created_at=at(2025, 6, 3), language="Klingon")])

    page = as_member.get(URL).content.decode()

    assert "Klingon" not in page
    assert "Globex" not in page


def test_a_job_shows_at_the_next_request_whatever_its_month(as_member, acme, history, add_jobs):
    before = as_member.get(URL).context["page"].report.months[0].jobs
    add_jobs([make_job(acme, created_at=at(2024, 7, 20))])

    after = as_member.get(URL).context["page"].report.months[0].jobs

    assert after == before + 1


def test_an_inactive_organisation_is_flagged(as_member, acme, history):
    acme.is_active = False
    acme.save()

    assert "This organisation is inactive" in as_member.get(URL).content.decode()


# Query counts: the same for a tiny history and a big one.

# session, user, access, then usage_report (stale marks, plan, tiers, monthly rows, keys,
# languages, API calls, free jobs left), then the header's organisation switcher.
PAGE_QUERIES = 14  # the report's, the status counts, the daily view's rows, the first month


def _small(acme):
    organisation_free_allowance_set(organisation=acme, allowance=5)
    build_usage_history(
        organisation=acme,
        key_names=["one"],
        last_month=TODAY,
        months=1,
        jobs_per_key_month=1,
        calls_per_job=1,
    )


def _large(acme):
    organisation_free_allowance_set(organisation=acme, allowance=5)
    build_usage_history(
        organisation=acme,
        key_names=[f"key-{index}" for index in range(12)],
        last_month=TODAY,
        months=30,
        jobs_per_key_month=4,
        growth=1,
        web_jobs_per_month=5,
        calls_per_job=3,
    )


@pytest.mark.parametrize("build", [_small, _large], ids=["small", "large"])
@pytest.mark.parametrize(
    "query", [{}, {"start": "2023-07", "end": "2025-06"}], ids=["12-months", "24-months"]
)
def test_the_page_query_count_does_not_grow_with_the_data(
    as_member, acme, build, query, django_assert_num_queries
):
    build(acme)

    with django_assert_num_queries(PAGE_QUERIES):
        response = as_member.get(URL, query)

    assert response.status_code == 200
    assert response.context["page"].report.totals.jobs > 0


def test_the_large_history_really_is_larger(acme):
    _large(acme)
    report = _report(acme, add_months(TODAY, -23), TODAY)

    assert len(report.keys) == 12 and len(report.months) == 24 and report.totals.jobs > 1000
