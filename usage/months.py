"""UTC calendar months, represented as the ``date`` of their first day."""

import datetime as dt
import re

# ASCII digits only (``\d`` matches any Unicode digit), matched whole (``$`` lets a trailing newline in).
_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
# The longest range of months any report covers, counting both ends (the API and the pages).
MAX_RANGE_MONTHS = 120


def month_of(moment: dt.datetime) -> dt.date:
    """The UTC month holding an aware ``moment``."""
    moment = moment.astimezone(dt.UTC)
    return dt.date(moment.year, moment.month, 1)


def date_from_db(value: dt.date | str) -> dt.date:
    """A date column read through a raw cursor: SQLite returns it as ISO text."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def current_month() -> dt.date:
    return month_of(dt.datetime.now(dt.UTC))


def parse_month(text: str) -> dt.date:
    """Parse ``YYYY-MM``; raises ``ValueError`` on anything else."""
    match = _MONTH_RE.fullmatch(text or "")
    if not match:
        raise ValueError("expected a month as YYYY-MM")
    year, month = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and year >= 1):
        raise ValueError("expected a month as YYYY-MM")
    return dt.date(year, month, 1)


def format_month(month: dt.date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(start: dt.date, end: dt.date) -> int:
    """How many months from ``start`` to ``end``, counting both ends (0 if end < start)."""
    return max(0, (end.year - start.year) * 12 + end.month - start.month + 1)


def month_range(start: dt.date, end: dt.date) -> list[dt.date]:
    return [add_months(start, offset) for offset in range(months_between(start, end))]


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The half-open UTC interval [start, end) of ``month``."""
    start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    following = add_months(month, 1)
    return start, dt.datetime(following.year, following.month, 1, tzinfo=dt.UTC)
