"""The ``usage-portal`` command line.

``usage-portal usage [--start-month M] [--end-month M] [--json]`` prints the monthly usage as a
table (or the portal's JSON). The key comes from ``$USAGE_PORTAL_API_KEY`` only, so that it
stays out of shell history and process lists; the portal from ``--base-url`` or
``$USAGE_PORTAL_BASE_URL``. Exit status: 0 on success, 1 when the request fails, 2 for a wrong
command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TextIO

from ._client import DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL, Client
from ._errors import UsagePortalError
from ._models import MonthlyUsage
from ._version import __version__

PROG = "usage-portal"
# Token columns: "Transcription" and "Notes"; "Tier disc." is the discount of the month's last job.
MONTH_COLUMNS = [
    "Month",
    "Jobs",
    "Transcription",
    "Notes",
    "Base cost",
    "Final cost",
    "Savings",
    "Tier disc.",
    "Jobs by tier",
]
KEY_COLUMNS = ["API key", "Jobs", "Transcription", "Notes", "Base cost", "Final cost", "Savings"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Usage Portal from the command line. The API key is read from ${ENV_API_KEY}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--base-url",
        help=f"the portal's address (default: ${ENV_BASE_URL}, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per attempt (default: 30)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    usage = commands.add_parser(
        "usage",
        help="monthly usage and costs (GET /usage)",
        description=(
            "Jobs, tokens and costs by month and by API key. Neither month: the current month; "
            "only --start-month: through the current month; only --end-month: that month alone."
        ),
    )
    usage.add_argument("--start-month", metavar="YYYY-MM", help="first month (UTC)")
    usage.add_argument("--end-month", metavar="YYYY-MM", help="last month (UTC), inclusive")
    usage.add_argument("--json", action="store_true", help="print the portal's JSON instead of tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with Client(base_url=args.base_url, timeout=args.timeout) as client:
            return run(args, client, sys.stdout)
    except UsagePortalError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    """Carry out the parsed command with ``client``, writing to ``out``."""
    usage = client.usage.get(start_month=args.start_month, end_month=args.end_month)
    out.write(usage.to_json(indent=2) + "\n" if args.json else render_usage(usage))
    return 0


def render_usage(usage: MonthlyUsage) -> str:
    """The monthly report as plain-text tables: months and totals, then API keys."""
    period = usage.period
    totals = usage.totals
    heading = (
        f"Usage {period.start_month}"
        if period.start_month == period.end_month
        else f"Usage {period.start_month} to {period.end_month}"
    )
    month_rows = [
        [
            month.month,
            _count(month.jobs),
            _count(month.transcription_tokens),
            _count(month.note_tokens),
            _money(month.base_cost),
            _money(month.final_cost),
            _money(month.savings),
            _percent(month.current_tier_discount),
            " ".join(f"{name} {_count(jobs)}" for name, jobs in month.tiers.items() if jobs) or "-",
        ]
        for month in usage.monthly_breakdown
    ]
    total_row = [
        "Total",
        _count(totals.jobs),
        _count(totals.transcription_tokens),
        _count(totals.note_tokens),
        _money(totals.base_cost),
        _money(totals.final_cost),
        _money(totals.savings),
        "",
        "",
    ]
    lines = [
        heading,
        "",
        *_table(
            MONTH_COLUMNS,
            [*month_rows, total_row],
            left_columns={0, 8},
            rule_before_last=True,
        ),
        "",
        f"Effective discount {_percent(totals.effective_discount_percentage)}"
        f"    Free jobs left {_count(totals.free_jobs_left)}",
    ]
    if usage.api_keys:
        key_rows = [
            [
                name,
                _count(key.jobs),
                _count(key.tokens.transcription),
                _count(key.tokens.note_generation),
                _money(key.costs.base),
                _money(key.costs.final),
                _money(key.costs.savings),
            ]
            for name, key in usage.api_keys.items()
        ]
        lines += [
            "",
            *_table(
                KEY_COLUMNS,
                key_rows,
                left_columns={0},
            ),
        ]
    else:
        lines += ["", "No API key has jobs in this period."]
    return "\n".join(lines) + "\n"


def _table(
    header: list[str], rows: list[list[str]], *, left_columns: set[int], rule_before_last: bool = False
) -> list[str]:
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if index in left_columns else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    body = [line(row) for row in rows]
    if rule_before_last and body:
        body.insert(len(body) - 1, rule)
    return [line(header), rule, *body]


def _count(value: int) -> str:
    return f"{value:,}"


def _money(value: Decimal) -> str:
    return f"{value:,.5f}"


def _percent(value: Decimal) -> str:
    return f"{value:.2f}%"
