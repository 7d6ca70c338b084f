"""Pure pieces of the usage page: chart geometry, tick labels, the range form, display filters."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage.pages.charts import ChartPoint, bar_chart, format_tick, nice_step, svg_markup
from usage.pages.forms import UsageRangeForm, range_presets
from usage.templatetags.usage_format import duration, hours, money, number, percent

TODAY = dt.date(2025, 6, 1)


def _points(values, backgrounds=None):
    backgrounds = backgrounds or [None] * len(values)
    return [
        ChartPoint(
            label=f"M{index}",
            short_label=f"m{index}",
            group_label=str(2024 + index // 12),
            value=value,
            background=background,
        )
        for index, (value, background) in enumerate(zip(values, backgrounds, strict=True))
    ]


@pytest.mark.parametrize(
    ("maximum", "step"),
    [(0, 1), (1, 0.25), (4, 1), (7, 2), (10, 2.5), (1140, 500), (0.0034, 0.001), (95_000, 25_000)],
)
def test_nice_steps_are_round_and_cover_the_maximum(maximum, step):
    assert nice_step(maximum) == pytest.approx(step)


@pytest.mark.parametrize(
    ("value", "step", "label"),
    [
        (0, 500, "0"),
        (500, 500, "500"),
        (1500, 500, "1.5k"),
        (20_000, 5_000, "20k"),
        (2_500_000, 500_000, "2.5M"),
        (0.005, 0.001, "0.005"),
        (0.75, 0.25, "0.75"),
        (7.5, 2.5, "7.5"),
        (40, 20, "40"),
    ],
)
def test_tick_labels_are_short(value, step, label):
    assert format_tick(value, step=step) == label


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=120))
def test_bars_stay_inside_the_plot_and_keep_their_order(values):
    chart = bar_chart(points=_points(values), width=560, height=250)

    assert len(chart.bars) == len(values)
    for bar in chart.bars:
        assert chart.left <= bar.bar.x and bar.bar.x + bar.bar.width <= chart.right + 0.01
        assert chart.top - 0.01 <= bar.bar.y and bar.bar.y + bar.bar.height <= chart.bottom + 0.01
    ordered = sorted(range(len(values)), key=values.__getitem__)
    heights = [chart.bars[index].bar.height for index in ordered]
    assert heights == sorted(heights)
    assert chart.ticks[0].label == "0"
    assert chart.ticks[-1].y <= min((bar.bar.y for bar in chart.bars), default=chart.bottom) + 0.01


def test_an_all_zero_chart_has_flat_bars_and_a_sane_axis():
    chart = bar_chart(points=_points([0, 0, 0]), width=560, height=250)

    assert [bar.bar.height for bar in chart.bars] == [0, 0, 0]
    assert [tick.label for tick in chart.ticks] == ["0", "1"]


def test_a_background_bar_is_drawn_behind_its_value():
    chart = bar_chart(
        points=_points([Decimal("9.5"), Decimal(0)], [Decimal("10.0"), Decimal("2.5")]), width=560, height=250
    )

    first, second = chart.bars
    assert first.background.height > first.bar.height > 0
    assert second.bar.height == 0 and second.background.height > 0
    assert first.background.x == first.bar.x


def test_x_labels_thin_out_and_always_show_the_last_month_and_each_year_once():
    chart = bar_chart(points=_points(list(range(24))), width=340, height=230, font_size=11, max_labels=6)

    assert len(chart.x_labels) <= 6
    assert chart.x_labels[-1].text == "m23"
    assert [label.group for label in chart.x_labels if label.group] == ["2024", "2025"]


def _form(data):
    form = UsageRangeForm(data, today_month=TODAY)
    return form, form.is_valid()


def test_the_form_defaults_and_cleans_months():
    form, valid = _form({"start": " 2025-02 ", "end": "2025-04"})

    assert valid
    assert form.range == (dt.date(2025, 2, 1), dt.date(2025, 4, 1))
    assert _form({})[0].range == (dt.date(2024, 7, 1), TODAY)


@pytest.mark.parametrize(
    "data",
    [
        {"start": "2025-00"},
        {"start": "25-01"},
        {"start": "2025-1"},
        {"start": "２０２５-01"},
        {"end": "2025-06-01"},
        {"start": "2025-06", "end": "2025-05"},
        {"end": "2025-07"},
        {"start": "2015-06"},
    ],
)
def test_the_form_rejects_bad_ranges_without_raising(data):
    form, valid = _form(data)

    assert not valid
    assert form.errors


def test_presets_end_this_month_and_mark_the_selected_range():
    # In June "This year" is the same range as "6 months", so it is left out.
    presets = range_presets(today_month=TODAY, selected=(dt.date(2025, 4, 1), TODAY))

    assert [(preset.label, preset.start, preset.end) for preset in presets] == [
        ("This month", "2025-06", "2025-06"),
        ("3 months", "2025-04", "2025-06"),
        ("6 months", "2025-01", "2025-06"),
        ("12 months", "2024-07", "2025-06"),
        ("24 months", "2023-07", "2025-06"),
    ]
    assert [preset.label for preset in presets if preset.selected] == ["3 months"]


def test_display_filters_round_like_the_api():
    assert money(Decimal("1234.567895")) == "1,234.56790"
    assert money(Decimal("0.000004")) == "0.00000"
    assert percent(Decimal("12.345")) == "12.35"
    assert percent(Decimal(0)) == "0.00"
    assert number(1234567) == "1,234,567"
    assert hours(5400) == "1.5"
    assert hours(179) == "0.0"
    assert hours(180) == "0.1"
    assert duration(59) == "1 min"
    assert duration(7200) == "2.0 h"


def test_svg_markup_escapes_every_text_and_names_the_chart():
    points = [
        ChartPoint(label="<b>", short_label="<i>", group_label="&", value=3, tooltip='<script>"x"</script>'),
        ChartPoint(label="b", short_label="b", group_label="&", value=1, partial=True),
    ]
    chart = bar_chart(points=points, width=300, height=200)

    markup = svg_markup(
        chart,
        dom_id="c-wide",
        css_class="chart-wide",
        title="Jobs <per> month",
        description="A & B",
        bar_class="bar",
    )

    assert markup.startswith('<svg class="chart-wide" id="c-wide" viewBox="0 0 300 200" role="img"')
    assert 'aria-labelledby="c-wide-title" aria-describedby="c-wide-desc"' in markup
    assert '<title id="c-wide-title">Jobs &lt;per&gt; month</title>' in markup
    assert '<desc id="c-wide-desc">A &amp; B</desc>' in markup
    assert "<script>" not in markup and "&lt;script&gt;&quot;x&quot;&lt;/script&gt;" in markup
    assert "&lt;i&gt;" in markup
    assert markup.count('style="fill: url(#c-wide-hatch)"') == 1
    assert markup.endswith("</svg>")


@pytest.mark.parametrize(
    ("month", "labels"), [(1, ["This month", "3 months"]), (12, ["12 months", "24 months"])]
)
def test_a_preset_that_repeats_another_range_is_offered_once(month, labels):
    presets = range_presets(today_month=dt.date(2025, month, 1), selected=None)

    assert "This year" not in [preset.label for preset in presets]
    assert len({(preset.start, preset.end) for preset in presets}) == len(presets) == 5
    assert set(labels) <= {preset.label for preset in presets}
