"""Shapes a ``UsageReport`` into the rows the usage page and the CSV export show.

Nothing here computes usage: every figure comes from ``usage.selectors.usage_report``; this module
only picks, labels and orders them, so that the page and the CSV always agree.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils.safestring import mark_safe

from accounts.models import ApiKey
from usage import pricing
from usage.months import format_month
from usage.selectors import DailyReport, DayUsage, MonthUsage, Usage, UsageReport

from . import charts


def month_label(month: dt.date) -> str:
    """``Mar 2025``: how a month is named on the page."""
    return month.strftime("%b %Y")


@dataclass(frozen=True)
class MonthRow:
    """One month of the report with the tier facts the page shows next to it."""

    month: dt.date
    usage: MonthUsage
    tiers: tuple[tuple[str, int], ...]
    current_tier: pricing.Tier
    next_tier: pricing.Tier | None
    jobs_until_next_tier: int | None
    is_current: bool

    @property
    def key(self) -> str:
        return format_month(self.month)

    @property
    def label(self) -> str:
        return month_label(self.month)


@dataclass(frozen=True)
class KeyRow:
    """The usage of one API key over the range, or of the web jobs when ``api_key`` is None."""

    name: str
    api_key: ApiKey | None
    usage: Usage

    @property
    def is_web(self) -> bool:
        return self.api_key is None


@dataclass(frozen=True)
class LanguageRow:
    """Jobs in one language and their share of the jobs of the range."""

    language: str
    jobs: int
    share_percent: Decimal


WEB_ROW_NAME = "Web (no API key)"


def month_rows(report: UsageReport, *, today_month: dt.date) -> list[MonthRow]:
    """Every month of the report, oldest first."""
    plan = report.plan
    rows = []
    for month in report.months:
        position = month.highest_tier
        rows.append(
            MonthRow(
                month=month.month,
                usage=month,
                tiers=tuple(month.tiers.items()),
                current_tier=month.current_tier(plan),
                next_tier=plan.tier_at(position + 1) if position < len(plan.tiers) else None,
                jobs_until_next_tier=month.jobs_until_next_tier(plan),
                is_current=month.month == today_month,
            )
        )
    return rows


def key_rows(report: UsageReport, *, include_empty_web: bool = False) -> list[KeyRow]:
    """One row per key with jobs in the range (by name), then the web jobs when there are any."""
    rows = [
        KeyRow(name=name, api_key=key_usage.api_key, usage=key_usage)
        for name, key_usage in report.keys.items()
    ]
    if report.web.jobs or include_empty_web:
        rows.append(KeyRow(name=WEB_ROW_NAME, api_key=None, usage=report.web))
    return rows


def language_rows(report: UsageReport) -> list[LanguageRow]:
    """Jobs by language, most used first, with each language's share of all jobs in the range."""
    total = sum(report.languages.values())
    return [
        LanguageRow(
            language=language,
            jobs=jobs,
            share_percent=Decimal(jobs) * 100 / total if total else pricing.ZERO,
        )
        for language, jobs in report.languages.items()
    ]


def is_empty(report: UsageReport) -> bool:
    """True when the range has neither jobs nor API calls: the page shows its empty state."""
    return report.totals.jobs == 0 and report.api_calls == 0


def _money_text(amount: Decimal, currency: str) -> str:
    return pricing.present_money_in(amount, currency=currency)


def jobs_chart_points(rows: list[MonthRow]) -> list[charts.ChartPoint]:
    """One point per month: its jobs; the current month is marked partial."""
    return [
        charts.ChartPoint(
            label=row.label,
            short_label=row.month.strftime("%b"),
            group_label=str(row.month.year),
            value=row.usage.jobs,
            partial=row.is_current,
            tooltip=f"{row.label}{' (so far)' if row.is_current else ''}: {row.usage.jobs:,} jobs, "
            f"{row.usage.completed_jobs:,} completed",
        )
        for row in rows
    ]


def cost_chart_points(rows: list[MonthRow], *, currency: str = "USD") -> list[charts.ChartPoint]:
    """One point per month: its final cost, over its base cost as the background bar."""
    return [
        charts.ChartPoint(
            label=row.label,
            short_label=row.month.strftime("%b"),
            group_label=str(row.month.year),
            value=row.usage.final_cost,
            background=row.usage.base_cost,
            partial=row.is_current,
            tooltip=f"{row.label}{' (so far)' if row.is_current else ''}: final cost "
            f"{_money_text(row.usage.final_cost, currency)}, "
            f"base cost {_money_text(row.usage.base_cost, currency)}",
        )
        for row in rows
    ]


def _peak(rows: list[MonthRow], value) -> MonthRow | None:
    best = max(rows, key=value, default=None)
    return best if best is not None and value(best) > 0 else None


def jobs_chart_description(rows: list[MonthRow], report: UsageReport) -> str:
    """A sentence that says what the jobs chart shows, for screen readers."""
    peak = _peak(rows, lambda row: row.usage.jobs)
    text = (
        f"Bar chart of jobs per month from {month_label(report.start_month)} to "
        f"{month_label(report.end_month)}: {report.totals.jobs:,} jobs in total"
    )
    if peak:
        text += f"; the busiest month was {peak.label} with {peak.usage.jobs:,} jobs"
    return text + ". The same figures are in the monthly usage table."


def cost_chart_description(rows: list[MonthRow], report: UsageReport) -> str:
    """A sentence that says what the cost chart shows, for screen readers."""
    peak = _peak(rows, lambda row: row.usage.final_cost)
    currency = report.plan.currency
    text = (
        f"Bar chart of final cost per month, drawn over the base cost before discounts, from "
        f"{month_label(report.start_month)} to {month_label(report.end_month)}: final cost "
        f"{_money_text(report.totals.final_cost, currency)} against a base cost of "
        f"{_money_text(report.totals.base_cost, currency)}"
    )
    if peak:
        text += f"; the highest month was {peak.label} at {_money_text(peak.usage.final_cost, currency)}"
    return text + ". The same figures are in the monthly usage table."


@dataclass(frozen=True)
class ChartView:
    """One chart in its two layouts (the page shows the one that fits the screen)."""

    dom_id: str
    title: str
    description: str
    wide: charts.BarChart
    narrow: charts.BarChart
    has_background: bool

    @property
    def bar_class(self) -> str:
        return "bar-cost" if self.has_background else "bar-jobs"

    def _svg(self, chart: charts.BarChart, variant: str) -> str:
        markup = charts.svg_markup(
            chart,
            dom_id=f"{self.dom_id}-{variant}",
            css_class=f"chart-{variant}",
            title=self.title,
            description=self.description,
            bar_class=self.bar_class,
        )
        return mark_safe(markup)  # noqa: S308 - svg_markup escapes every text it draws

    @property
    def wide_svg(self) -> str:
        """The layout for screens from 720 px wide (escaped by ``charts.svg_markup``)."""
        return self._svg(self.wide, "wide")

    @property
    def narrow_svg(self) -> str:
        """The layout for phones (escaped by ``charts.svg_markup``)."""
        return self._svg(self.narrow, "narrow")


WIDE_CHART = {"width": 560, "height": 250, "font_size": 12}
NARROW_CHART = {"width": 340, "height": 230, "font_size": 11, "max_labels": 6}


def _chart_view(*, dom_id: str, title: str, description: str, points, has_background: bool) -> ChartView:
    return ChartView(
        dom_id=dom_id,
        title=title,
        description=description,
        wide=charts.bar_chart(points=points, **WIDE_CHART),
        narrow=charts.bar_chart(points=points, **NARROW_CHART),
        has_background=has_background,
    )


@dataclass(frozen=True)
class UsagePage:
    """What the usage page shows for one report."""

    report: UsageReport
    months: list[MonthRow]
    keys: list[KeyRow]
    languages: list[LanguageRow]
    current: MonthRow | None
    jobs_chart: ChartView
    cost_chart: ChartView
    is_empty: bool

    @property
    def tier_names(self) -> list[str]:
        return self.report.plan.tier_names

    @property
    def months_newest_first(self) -> list[MonthRow]:
        return self.months[::-1]


def usage_page(report: UsageReport, *, today_month: dt.date) -> UsagePage:
    """Rows, charts and the current month's tier status for the usage page."""
    months = month_rows(report, today_month=today_month)
    return UsagePage(
        report=report,
        months=months,
        keys=key_rows(report),
        languages=language_rows(report),
        current=next((row for row in months if row.is_current), None),
        jobs_chart=_chart_view(
            dom_id="jobs-chart",
            title="Jobs per month",
            description=jobs_chart_description(months, report),
            points=jobs_chart_points(months),
            has_background=False,
        ),
        cost_chart=_chart_view(
            dom_id="cost-chart",
            title="Cost per month",
            description=cost_chart_description(months, report),
            points=cost_chart_points(months, currency=report.plan.currency),
            has_background=True,
        ),
        is_empty=is_empty(report),
    )


@dataclass(frozen=True)
class DailyPage:
    """The daily view of one month: a row per UTC day, two charts, and the month's totals."""

    report: DailyReport
    jobs_chart: ChartView
    cost_chart: ChartView
    partial_label: str

    @property
    def label(self) -> str:
        return self.report.month.strftime("%B %Y")

    @property
    def key(self) -> str:
        return format_month(self.report.month)

    @property
    def days_newest_first(self) -> list[DayUsage]:
        return self.report.days[::-1]


def _day_label(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def daily_page(report: DailyReport, *, today: dt.date) -> DailyPage:
    """Charts of jobs and of final cost per day of the report's month; today is marked partial."""
    currency = report.plan.currency
    jobs_points, cost_points = [], []
    for day in report.days:
        partial = day.day == today
        so_far = " (so far)" if partial else ""
        common = {
            "label": _day_label(day.day),
            "short_label": str(day.day.day),
            "group_label": "",
            "partial": partial,
        }
        jobs_points.append(
            charts.ChartPoint(
                **common, value=day.jobs, tooltip=f"{_day_label(day.day)}{so_far}: {day.jobs:,} jobs"
            )
        )
        cost_points.append(
            charts.ChartPoint(
                **common,
                value=day.final_cost,
                background=day.base_cost,
                tooltip=f"{_day_label(day.day)}{so_far}: final cost {_money_text(day.final_cost, currency)}, "
                f"base cost {_money_text(day.base_cost, currency)}",
            )
        )
    month = report.month.strftime("%B %Y")
    busiest = max(report.days, key=lambda day: day.jobs, default=None)
    jobs_text = f"Bar chart of jobs per UTC day in {month}: {report.totals.jobs:,} jobs in total"
    if busiest is not None and busiest.jobs:
        jobs_text += f"; the busiest day was {_day_label(busiest.day)} with {busiest.jobs:,} jobs"
    cost_text = (
        f"Bar chart of final cost per UTC day in {month}, over the base cost: final cost "
        f"{_money_text(report.totals.final_cost, currency)} in total"
    )
    return DailyPage(
        report=report,
        partial_label="Today so far" if any(day.day == today for day in report.days) else "",
        jobs_chart=_chart_view(
            dom_id="daily-jobs-chart",
            title=f"Jobs per day, {month}",
            description=jobs_text + ". The same figures are in the daily table.",
            points=jobs_points,
            has_background=False,
        ),
        cost_chart=_chart_view(
            dom_id="daily-cost-chart",
            title=f"Cost per day, {month}",
            description=cost_text + ". The same figures are in the daily table.",
            points=cost_points,
            has_background=True,
        ),
    )
