"""The month-range picker of the usage page and its CSV export."""

import datetime as dt
from dataclasses import dataclass

from django import forms

from usage.months import (
    MAX_RANGE_MONTHS,
    add_months,
    current_month,
    format_month,
    months_between,
    parse_month,
)

DEFAULT_RANGE_MONTHS = 12
FIRST_MONTH = dt.date(1, 1, 1)


class MonthField(forms.CharField):
    """A ``YYYY-MM`` month, cleaned to the ``date`` of its first day (None when left empty)."""

    default_error_messages = {"invalid": "Enter a month as YYYY-MM, for example 2025-03."}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"type": "month", "pattern": r"\d{4}-\d{2}"}))
        super().__init__(**kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            return parse_month(text)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def prepare_value(self, value):
        return format_month(value) if isinstance(value, dt.date) else value


class UsageRangeForm(forms.Form):
    """A range of whole months, both ends included.

    Neither end given: the last ``DEFAULT_RANGE_MONTHS`` months through the current one. Only
    ``start``: through the current month. Only ``end``: the ``DEFAULT_RANGE_MONTHS`` months
    ending there. A start after the end, an end after the current month, or more than
    ``MAX_RANGE_MONTHS`` months is an error on the form, never an exception.
    """

    start = MonthField(label="From")
    end = MonthField(label="To")

    def __init__(self, data=None, *, today_month: dt.date | None = None, **kwargs):
        self.today_month = today_month or current_month()
        super().__init__(data, **kwargs)

    @classmethod
    def from_query(cls, query, *, today_month: dt.date | None = None) -> "UsageRangeForm":
        """A bound form from a request's GET parameters; other parameters are ignored."""
        return cls({"start": query.get("start", ""), "end": query.get("end", "")}, today_month=today_month)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        end = end or self.today_month
        if start is None and months_between(FIRST_MONTH, end) < DEFAULT_RANGE_MONTHS:
            # The default range would begin before the year 1, which no date can hold.
            self.add_error("start", f"Choose the first month too (from {format_month(FIRST_MONTH)}).")
            return cleaned
        start = start or add_months(end, 1 - DEFAULT_RANGE_MONTHS)
        if end > self.today_month:
            self.add_error(
                "end", f"Usage is only known up to the current month ({format_month(self.today_month)})."
            )
        elif start > end:
            self.add_error("start", "The first month must not be after the last month.")
        elif months_between(start, end) > MAX_RANGE_MONTHS:
            self.add_error(None, f"Choose at most {MAX_RANGE_MONTHS} months at a time.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    @property
    def range(self) -> tuple[dt.date, dt.date]:
        """The chosen (start, end) months; only valid after ``is_valid()`` returned True."""
        return self.cleaned_data["start"], self.cleaned_data["end"]


@dataclass(frozen=True)
class RangePreset:
    """A quick period offered next to the picker, as the ``start``/``end`` it links to."""

    label: str
    start: str
    end: str
    selected: bool


def range_presets(
    *,
    today_month: dt.date,
    selected: tuple[dt.date, dt.date] | None,
    first_month: dt.date | None = None,
) -> list[RangePreset]:
    """Quick choices offered next to the picker; ``selected`` marks the one in use, if any.

    With ``first_month`` (the organisation's first month with usage) an "All time" choice runs
    from it (at most ``MAX_RANGE_MONTHS`` back) through the current month.
    """
    choices = [
        ("This month", today_month, today_month),
        ("3 months", add_months(today_month, -2), today_month),
        ("6 months", add_months(today_month, -5), today_month),
        ("12 months", add_months(today_month, -11), today_month),
        ("24 months", add_months(today_month, -23), today_month),
        ("This year", dt.date(today_month.year, 1, 1), today_month),
    ]
    presets, seen = [], set()
    for label, start, end in choices:
        # In January "This year" is "This month"; in December it is "12 months": offer it once.
        if (start, end) in seen:
            continue
        seen.add((start, end))
        presets.append(
            RangePreset(
                label=label,
                start=format_month(start),
                end=format_month(end),
                selected=(start, end) == selected,
            )
        )
    if first_month is not None:
        start = max(min(first_month, today_month), add_months(today_month, 1 - MAX_RANGE_MONTHS))
        presets.append(
            RangePreset(
                label="All time",
                start=format_month(start),
                end=format_month(today_month),
                selected=(start, today_month) == selected,
            )
        )
    return presets


class DayMonthForm(forms.Form):
    """The month of the usage page's daily view (``day_month``); a bad or future month falls back
    to ``default`` (the range's last month) and says why, without failing the page."""

    day_month = MonthField(label="Month")

    def __init__(self, data=None, *, today_month: dt.date, default: dt.date, **kwargs):
        self.today_month = today_month
        self.default = default
        super().__init__(data, **kwargs)

    @classmethod
    def from_query(cls, query, *, today_month: dt.date, default: dt.date) -> "DayMonthForm":
        return cls({"day_month": query.get("day_month", "")}, today_month=today_month, default=default)

    def clean_day_month(self):
        month = self.cleaned_data.get("day_month")
        if month is not None and month > self.today_month:
            raise forms.ValidationError(
                f"Usage is only known up to the current month ({format_month(self.today_month)})."
            )
        return month

    @property
    def month(self) -> dt.date:
        """The month to show: the chosen one when valid, else the default."""
        if self.is_valid() and self.cleaned_data["day_month"] is not None:
            return self.cleaned_data["day_month"]
        return self.default
