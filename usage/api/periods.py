"""The period of ``GET /usage``: defaults and validation of ``start_month``/``end_month`` (pure)."""

import datetime as dt
from dataclasses import dataclass

from usage.months import MAX_RANGE_MONTHS, format_month, months_between, parse_month


class PeriodError(ValueError):
    """A rejected period; ``errors`` maps each offending parameter name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


def _parse(text: str) -> dt.date | None:
    try:
        return parse_month(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Period:
    start_month: dt.date
    end_month: dt.date


def period_resolve(*, start_month: str | None, end_month: str | None, current_month: dt.date) -> Period:
    """The months asked for, per SPEC "GET /usage"; raises ``PeriodError`` naming the bad parameter.

    ``None`` means the parameter was not given; an empty string was given and is malformed.
    Neither given: ``current_month`` alone. Only ``start_month``: through ``current_month``. Only
    ``end_month``: that month alone. Rejected: a malformed month, a month after
    ``current_month``, ``start_month`` after ``end_month``, more than ``MAX_RANGE_MONTHS`` months
    counting both ends.
    """
    errors: dict[str, list[str]] = {}
    given: dict[str, dt.date] = {}
    for name, text in (("start_month", start_month), ("end_month", end_month)):
        if text is None:
            continue
        month = _parse(text)
        if month is None:
            shown = text if len(text) <= 20 else text[:20] + "..."
            errors[name] = [
                f"{shown!r} is not a month: expected YYYY-MM, e.g. {format_month(current_month)}."
            ]
            continue
        if month > current_month:
            errors[name] = [
                f"{format_month(month)} is after the current month ({format_month(current_month)})."
            ]
            continue
        given[name] = month
    if errors:
        raise PeriodError(errors)

    if "start_month" in given and "end_month" in given:
        start, end = given["start_month"], given["end_month"]
    elif "start_month" in given:
        start, end = given["start_month"], current_month
    elif "end_month" in given:
        start = end = given["end_month"]
    else:
        start = end = current_month

    if start > end:
        raise PeriodError(
            {"start_month": [f"{format_month(start)} is after end_month ({format_month(end)})."]}
        )
    span = months_between(start, end)
    if span > MAX_RANGE_MONTHS:
        raise PeriodError(
            {
                "start_month": [
                    f"The period {format_month(start)} to {format_month(end)} spans {span} months; "
                    f"at most {MAX_RANGE_MONTHS} are allowed."
                ]
            }
        )
    return Period(start_month=start, end_month=end)
