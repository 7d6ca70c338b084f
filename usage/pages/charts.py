"""Server-rendered SVG bar charts of the usage page; pure Python, no Django.

``bar_chart`` computes a chart in abstract SVG user units; ``svg_markup`` draws it as inline SVG
with its accessible name and description (built here rather than in a template because a page
draws four of them and template rendering dominated the page's render time). Each bar may have a
lighter "background" bar behind it (base cost behind final cost), so a reader sees what was
charged against what it would have cost without discounts; a ``partial`` bar (the month so far)
is hatched.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

Number = int | float | Decimal


@dataclass(frozen=True)
class ChartPoint:
    """One category of the x axis (a month) and its values."""

    label: str
    short_label: str
    group_label: str
    value: Number
    background: Number | None = None
    partial: bool = False
    tooltip: str = ""


@dataclass(frozen=True)
class Rect:
    """A rectangle in user units, ``y`` growing downwards as in SVG."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Bar:
    """One drawn bar, its optional background bar, and the band that shows its tooltip on hover."""

    bar: Rect
    background: Rect | None
    hit: Rect
    tooltip: str
    partial: bool


@dataclass(frozen=True)
class Tick:
    """A horizontal grid line of the y axis and its label."""

    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    """A month label under the x axis; ``group`` (the year) is empty when it did not change."""

    x: float
    text: str
    group: str


@dataclass(frozen=True)
class BarChart:
    """Everything the template needs to draw one chart, in user units of ``viewBox``."""

    width: int
    height: int
    font_size: float
    left: float
    right: float
    top: float
    bottom: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    x_labels: tuple[XLabel, ...]

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    @property
    def tick_label_x(self) -> float:
        return round(self.left - self.font_size * 0.5, 2)

    @property
    def x_label_y(self) -> float:
        return round(self.bottom + self.font_size * 1.35, 2)

    @property
    def group_label_y(self) -> float:
        return round(self.bottom + self.font_size * 2.6, 2)


def nice_step(maximum: float, *, target_ticks: int = 4) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) that covers ``maximum``."""
    if maximum <= 0:
        return 1.0
    raw = maximum / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * power * (1 + 1e-9):
            return multiple * power
    return 10 * power


def format_tick(value: float, *, step: float) -> str:
    """A tick label as short as the step allows: ``1.5k``, ``2M``, ``0.005``."""
    if value == 0:
        return "0"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size and step >= size / 10:
            return _trim(f"{value / size:.{_decimals(step / size)}f}") + suffix
    return _trim(f"{value:,.{_decimals(step)}f}")


def _decimals(step: float) -> int:
    if step >= 1:
        return 0 if float(step).is_integer() else 1
    places = -math.floor(math.log10(step))
    return places + (0 if round(step * 10**places, 6).is_integer() else 1)


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def bar_chart(
    *,
    points: Sequence[ChartPoint],
    width: int,
    height: int,
    font_size: float = 12,
    max_labels: int | None = None,
    tick_format: Callable[[float, float], str] | None = None,
) -> BarChart:
    """Lay out one bar per point over a y axis from 0 to a round maximum.

    At most ``max_labels`` x labels are shown (evenly spaced, always including the last); a
    label's ``group`` (the year) is shown under the first label and wherever it changes.
    """
    tick_format = tick_format or (lambda value, step: format_tick(value, step=step))
    values = [float(point.value) for point in points]
    values += [float(point.background) for point in points if point.background is not None]
    step = nice_step(max(values, default=0))
    top_value = step * max(1, math.ceil(max(values, default=0) / step - 1e-9))
    tick_values = [step * index for index in range(round(top_value / step) + 1)]
    tick_labels = [tick_format(value, step) for value in tick_values]

    left = max(len(label) for label in tick_labels) * font_size * 0.62 + font_size
    top = font_size
    right = width - font_size * 0.5
    bottom = height - font_size * 3.2
    plot_height = bottom - top

    def y_of(value: float) -> float:
        return bottom - (value / top_value) * plot_height

    count = len(points)
    band = (right - left) / max(count, 1)
    bar_width = min(band * 0.64, font_size * 3.2)
    bars = []
    for index, point in enumerate(points):
        centre = left + band * (index + 0.5)
        x = centre - bar_width / 2
        value_y = y_of(float(point.value))
        background = None
        if point.background is not None:
            background_y = y_of(float(point.background))
            background = Rect(
                round(x, 2), round(background_y, 2), round(bar_width, 2), round(bottom - background_y, 2)
            )
        bars.append(
            Bar(
                bar=Rect(round(x, 2), round(value_y, 2), round(bar_width, 2), round(bottom - value_y, 2)),
                background=background,
                hit=Rect(round(left + band * index, 2), round(top, 2), round(band, 2), round(plot_height, 2)),
                tooltip=point.tooltip or point.label,
                partial=point.partial,
            )
        )

    max_labels = max_labels or max(1, int((right - left) / (font_size * 2.9)))
    every = max(1, math.ceil(count / max_labels))
    shown = set(range(count - 1, -1, -every))
    x_labels = []
    last_group = None
    for index, point in enumerate(points):
        if index not in shown:
            continue
        group = point.group_label if point.group_label != last_group else ""
        last_group = point.group_label
        x_labels.append(XLabel(x=round(left + band * (index + 0.5), 2), text=point.short_label, group=group))

    return BarChart(
        width=width,
        height=height,
        font_size=font_size,
        left=round(left, 2),
        right=round(right, 2),
        top=round(top, 2),
        bottom=round(bottom, 2),
        bars=tuple(bars),
        ticks=tuple(
            Tick(y=round(y_of(value), 2), label=label)
            for value, label in zip(tick_values, tick_labels, strict=True)
        ),
        x_labels=tuple(x_labels),
    )


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.2f}"


def _rect(css_class: str, rect: Rect, extra: str = "") -> str:
    return (
        f'<rect class="{css_class}"{extra} x="{_number(rect.x)}" y="{_number(rect.y)}" '
        f'width="{_number(rect.width)}" height="{_number(rect.height)}"/>'
    )


def svg_markup(
    chart: BarChart, *, dom_id: str, css_class: str, title: str, description: str, bar_class: str
) -> str:
    """The chart as an inline ``<svg role="img">`` named by ``title`` and described by ``description``.

    Every text is HTML-escaped; ``dom_id``, ``css_class`` and ``bar_class`` are trusted names,
    and ``dom_id`` must be unique in the page.
    """
    hatch = f"{dom_id}-hatch"
    parts = [
        f'<svg class="{css_class}" id="{dom_id}" viewBox="{chart.view_box}" role="img" '
        f'aria-labelledby="{dom_id}-title" aria-describedby="{dom_id}-desc" focusable="false" '
        f'font-size="{_number(chart.font_size)}">',
        f'<title id="{dom_id}-title">{escape(title)}</title>',
        f'<desc id="{dom_id}-desc">{escape(description)}</desc>',
        f'<defs><pattern id="{hatch}" patternUnits="userSpaceOnUse" width="5" height="5" '
        f'patternTransform="rotate(45)"><rect width="5" height="5" class="hatch-bg"/>'
        f'<rect width="2.5" height="5" class="hatch-{bar_class}"/></pattern></defs>',
        '<g class="grid">',
    ]
    for index, tick in enumerate(chart.ticks):
        baseline = ' class="baseline"' if index == 0 else ""
        parts.append(
            f'<line{baseline} x1="{_number(chart.left)}" x2="{_number(chart.right)}" '
            f'y1="{_number(tick.y)}" y2="{_number(tick.y)}"/>'
            f'<text x="{_number(chart.tick_label_x)}" y="{_number(tick.y)}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(tick.label)}</text>'
        )
    parts.append('</g><g class="bars">')
    for bar in chart.bars:
        parts.append(f"<g><title>{escape(bar.tooltip)}</title>")
        if bar.background is not None:
            parts.append(_rect("bar-bg", bar.background))
        fill = f' style="fill: url(#{hatch})"' if bar.partial else ""
        parts.append(_rect(bar_class, bar.bar, fill))
        parts.append(_rect("hit", bar.hit))
        parts.append("</g>")
    parts.append('</g><g class="x-labels">')
    for label in chart.x_labels:
        parts.append(
            f'<text x="{_number(label.x)}" y="{_number(chart.x_label_y)}" text-anchor="middle">'
            f"{escape(label.text)}</text>"
        )
        if label.group:
            parts.append(
                f'<text class="group" x="{_number(label.x)}" y="{_number(chart.group_label_y)}" '
                f'text-anchor="middle">{escape(label.group)}</text>'
            )
    parts.append("</g></svg>")
    return "".join(parts)
