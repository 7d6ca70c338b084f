"""CSV export of a ``UsageReport``: the same figures as the usage page, one row per line item.

Rows, in order:

- ``month``: one per month of the range (``month_start`` = ``month_end`` = that month), with the
  month's tier facts and API calls;
- ``api_key``: one per key and month in which that key had jobs (``month_start`` =
  ``month_end`` = that month), key by key, then ``web`` rows for the jobs sent without a key,
  month by month;
- ``language``: one per language with jobs in the range (``month_start``/``month_end`` = the
  range), most used first, with its ``language`` and ``jobs``;
- ``total``: the whole range, equal to the sum of the ``month`` rows.

Money columns name the plan's currency (``base_cost_USD``); money is rounded half-up to 5
places and percentages to 2, as everywhere else; a text cell that a spreadsheet would run as a
formula is prefixed with an apostrophe. The text starts with a UTF-8 byte order mark so that
spreadsheets read names in any script correctly.
"""

import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal

from usage import pricing
from usage.months import format_month
from usage.selectors import Usage, UsageReport

from .presentation import KeyRow, MonthRow, key_rows, month_rows

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_filename(report: UsageReport) -> str:
    """``<org_id>-usage-<start>-<end>.csv``."""
    start, end = format_month(report.start_month), format_month(report.end_month)
    return f"{report.organisation.org_id}-usage-{start}-{end}.csv"


def csv_header(report: UsageReport) -> list[str]:
    """The column names; one ``<tier>_jobs`` column per tier of the report's plan, in order.

    Tier names are chosen by staff, so these columns are neutralised like any other text cell.
    """
    return [
        "record",
        "month_start",
        "month_end",
        "api_key_name",
        "api_key_prefix",
        "api_key_status",
        "jobs",
        "completed_jobs",
        "success_rate_percent",
        "audio_duration_seconds",
        "transcription_tokens",
        "note_tokens",
        *(_safe_text(f"{name}_jobs") for name in report.plan.tier_names),
        "free_jobs",
        f"base_cost_{report.plan.currency}",
        f"final_cost_{report.plan.currency}",
        f"savings_{report.plan.currency}",
        "effective_discount_percentage",
        "current_tier",
        "current_tier_discount",
        "jobs_until_next_tier",
        "api_calls",
        "language",
    ]


def _safe_text(value: str) -> str:
    """``value`` with an apostrophe in front when a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def _money(amount: Decimal) -> str:
    return str(pricing.present_money(amount))


def _percent(amount: Decimal) -> str:
    return str(pricing.present_percent(amount))


def _usage_cells(report: UsageReport, usage: Usage) -> list[str]:
    return [
        str(usage.jobs),
        str(usage.completed_jobs),
        _percent(usage.success_rate_percent),
        str(usage.audio_duration_seconds),
        str(usage.transcription_tokens),
        str(usage.note_tokens),
        *(str(usage.tiers.get(name, 0)) for name in report.plan.tier_names),
        str(usage.free_jobs),
        _money(usage.base_cost),
        _money(usage.final_cost),
        _money(usage.savings),
        _percent(usage.effective_discount_percentage),
    ]


def _month_row(report: UsageReport, row: MonthRow) -> list[str]:
    month = format_month(row.month)
    until_next = "" if row.jobs_until_next_tier is None else str(row.jobs_until_next_tier)
    return [
        "month",
        month,
        month,
        "",
        "",
        "",
        *_usage_cells(report, row.usage),
        _safe_text(row.current_tier.name),
        _percent(row.current_tier.discount_percent),
        until_next,
        str(row.usage.api_calls),
        "",
    ]


def _key_periods(report: UsageReport) -> Iterator[tuple[dt.date, dt.date, KeyRow]]:
    """(month, month, figures) of every key-month with jobs, key by key, months in order."""
    for row in key_rows(report):
        for month, usage in sorted(row.usage.months.items()):
            yield month, month, KeyRow(name=row.name, api_key=row.api_key, usage=usage)


def _key_row(report: UsageReport, start: dt.date, end: dt.date, row: KeyRow) -> list[str]:
    if row.api_key is None:
        identity = ["web", "", "", ""]
    else:
        status = "revoked" if row.api_key.is_revoked else "active"
        identity = ["api_key", _safe_text(row.name), row.api_key.prefix, status]
    return [
        identity[0],
        format_month(start),
        format_month(end),
        *identity[1:],
        *_usage_cells(report, row.usage),
        "",
        "",
        "",
        "",
        "",
    ]


def _blank_usage_cells(report: UsageReport) -> list[str]:
    return [""] * len(_usage_cells(report, Usage()))


def _language_row(report: UsageReport, language: str, jobs: int) -> list[str]:
    cells = _blank_usage_cells(report)
    cells[0] = str(jobs)
    start, end = format_month(report.start_month), format_month(report.end_month)
    return ["language", start, end, "", "", "", *cells, "", "", "", "", _safe_text(language)]


def _total_row(report: UsageReport) -> list[str]:
    start, end = format_month(report.start_month), format_month(report.end_month)
    return [
        "total",
        start,
        end,
        "",
        "",
        "",
        *_usage_cells(report, report.totals),
        "",
        "",
        "",
        str(report.api_calls),
        "",
    ]


def usage_csv_rows(report: UsageReport, *, today_month: dt.date) -> Iterator[list[str]]:
    """The header, then the month, key, language and total rows (see the module docstring)."""
    yield csv_header(report)
    for row in month_rows(report, today_month=today_month):
        yield _month_row(report, row)
    for start, end, row in _key_periods(report):
        yield _key_row(report, start, end, row)
    for language, jobs in report.languages.items():
        yield _language_row(report, language, jobs)
    yield _total_row(report)


def usage_csv(report: UsageReport, *, today_month: dt.date) -> str:
    """The whole export as text: a byte order mark, then CRLF line ends, as RFC 4180 and
    spreadsheets expect."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(usage_csv_rows(report, today_month=today_month))
    return buffer.getvalue()
