from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage import pricing
from usage.pricing import Plan, Tier

STANDARD = Plan(
    name="standard",
    per_job_fee=Decimal("0"),
    transcription_rate=Decimal("0.01"),
    note_rate=Decimal("0.02"),
    tiers=(
        Tier("tier1", 1, Decimal("0")),
        Tier("tier2", 1001, Decimal("10")),
        Tier("tier3", 10001, Decimal("20")),
        Tier("tier4", 100001, Decimal("30")),
    ),
)


@pytest.mark.parametrize(
    ("rank", "position"),
    [(1, 1), (1000, 1), (1001, 2), (10000, 2), (10001, 3), (100000, 3), (100001, 4), (10**9, 4)],
)
def test_tier_boundaries_of_the_standard_plan(rank, position):
    assert STANDARD.tier_position_for_rank(rank) == position


def test_base_cost_is_exact():
    cost = pricing.base_cost(STANDARD, jobs=1, transcription_tokens=14, note_tokens=27)
    assert cost == Decimal("0.00068")


def test_final_cost_applies_the_tier_discount_and_free_jobs_cost_nothing():
    base = Decimal("1.00000")
    assert pricing.final_cost(STANDARD, base=base, tier=2, is_free=False) == Decimal("0.9")
    assert pricing.final_cost(STANDARD, base=base, tier=4, is_free=False) == Decimal("0.7")
    assert pricing.final_cost(STANDARD, base=base, tier=4, is_free=True) == 0


def test_presentation_rounds_half_up():
    assert pricing.present_money(Decimal("0.000005")) == Decimal("0.00001")
    assert pricing.present_money(Decimal("0.0000049")) == Decimal("0.00000")
    assert pricing.present_percent(Decimal("12.345")) == Decimal("12.35")
    assert pricing.effective_discount_percent(base=Decimal(0), final=Decimal(0)) == 0


def test_month_segments_split_at_tiers_and_the_free_prefix():
    segments = pricing.month_segments(STANDARD, jobs=1500, free_jobs=1200)
    assert [(s.tier, s.is_free, s.jobs) for s in segments] == [
        (1, True, 1000),
        (2, True, 200),
        (2, False, 300),
    ]


def test_free_jobs_spill_over_months_in_order():
    assert pricing.free_jobs_per_month(5, [2, 0, 4, 3]) == [2, 0, 3, 0]


@pytest.mark.parametrize(
    ("ladder", "problem"),
    [
        ([], "at least one tier"),
        ([(2, Decimal(0))], "start at rank 1"),
        ([(1, Decimal(0)), (1, Decimal(5))], "strictly increase"),
        ([(1, Decimal(101))], "between 0 and 100"),
    ],
)
def test_invalid_ladders_are_explained(ladder, problem):
    assert any(problem in message for message in pricing.tier_problems(ladder))


@given(jobs=st.integers(min_value=0, max_value=250_000), free=st.integers(min_value=0, max_value=300_000))
def test_segments_cover_every_rank_once_with_the_right_tier(jobs, free):
    segments = pricing.month_segments(STANDARD, jobs=jobs, free_jobs=free)
    assert sum(segment.jobs for segment in segments) == jobs
    rank = 1
    for segment in segments:
        assert segment.jobs > 0
        assert segment.tier == STANDARD.tier_position_for_rank(rank)
        assert segment.tier == STANDARD.tier_position_for_rank(rank + segment.jobs - 1)
        assert segment.is_free == (rank <= free)
        rank += segment.jobs
