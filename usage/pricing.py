"""Pricing rules of SPEC "Usage semantics", as pure functions with no database access.

Money is ``Decimal`` throughout and is never rounded here except by ``present_money`` and
``present_percent``, which the presentation layers call at the very end.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
HUNDRED = Decimal(100)
THOUSAND = Decimal(1000)
_MONEY_PLACES = Decimal("0.00001")
_PERCENT_PLACES = Decimal("0.01")
_CENTS = Decimal("0.01")

# Symbols of the currencies customers commonly read them in; any other code is written out.
CURRENCY_SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "INR": "₹",
    "JPY": "¥",
    "CNY": "CN¥",
    "AUD": "A$",
    "CAD": "CA$",
    "NZD": "NZ$",
    "BRL": "R$",
    "KRW": "₩",
}


@dataclass(frozen=True)
class Tier:
    name: str
    first_rank: int
    discount_percent: Decimal


@dataclass(frozen=True)
class Plan:
    """A pricing plan with its tiers ordered by ``first_rank`` (the first starting at rank 1)."""

    name: str
    per_job_fee: Decimal
    transcription_rate: Decimal
    note_rate: Decimal
    tiers: tuple[Tier, ...]
    currency: str = "USD"

    def __post_init__(self) -> None:
        problems = tier_problems([(tier.first_rank, tier.discount_percent) for tier in self.tiers])
        if problems:
            raise ValueError(f"plan {self.name!r}: {'; '.join(problems)}")

    @property
    def tier_names(self) -> list[str]:
        return [tier.name for tier in self.tiers]

    def tier_at(self, position: int) -> Tier:
        """The tier at 1-based ``position``."""
        return self.tiers[position - 1]

    def tier_position_for_rank(self, rank: int) -> int:
        """1-based position of the tier whose band holds monthly job ``rank`` (rank >= 1)."""
        position = 1
        for index, tier in enumerate(self.tiers, start=1):
            if tier.first_rank <= rank:
                position = index
            else:
                break
        return position


def tier_problems(tiers: Sequence[tuple[int, Decimal]]) -> list[str]:
    """Why a list of (first_rank, discount_percent), in order, is not a valid tier ladder."""
    problems = []
    if not tiers:
        return ["a plan needs at least one tier"]
    if tiers[0][0] != 1:
        problems.append("the first tier must start at rank 1")
    for (previous, _), (current, _) in zip(tiers, tiers[1:], strict=False):
        if current <= previous:
            problems.append("tier first ranks must strictly increase")
            break
    if any(not (ZERO <= Decimal(discount) <= HUNDRED) for _, discount in tiers):
        problems.append("discounts must be between 0 and 100")
    return problems


@dataclass(frozen=True)
class Segment:
    """A run of consecutive monthly ranks sharing one tier and one free flag."""

    tier: int
    is_free: bool
    jobs: int


def month_segments(plan: Plan, *, jobs: int, free_jobs: int) -> list[Segment]:
    """Split a month of ``jobs`` ranked jobs, whose first ``free_jobs`` are free, into segments.

    Segments come in rank order; empty ones are left out.
    """
    cuts = {1, jobs + 1, min(max(free_jobs, 0), jobs) + 1}
    cuts.update(tier.first_rank for tier in plan.tiers if tier.first_rank <= jobs)
    ordered = sorted(cut for cut in cuts if 1 <= cut <= jobs + 1)
    return [
        Segment(tier=plan.tier_position_for_rank(start), is_free=start <= free_jobs, jobs=end - start)
        for start, end in zip(ordered, ordered[1:], strict=False)
    ]


def free_jobs_per_month(allowance: int, month_job_counts: Iterable[int]) -> list[int]:
    """How many jobs of each month (given in month order) fall in the all-time free allowance."""
    remaining = allowance
    result = []
    for count in month_job_counts:
        free = min(remaining, count)
        result.append(free)
        remaining -= free
    return result


def base_cost(plan: Plan, *, jobs: int, transcription_tokens: int, note_tokens: int) -> Decimal:
    """Exact base cost of ``jobs`` jobs with these token totals (base cost is linear per job)."""
    return (
        plan.per_job_fee * jobs
        + Decimal(transcription_tokens) * plan.transcription_rate / THOUSAND
        + Decimal(note_tokens) * plan.note_rate / THOUSAND
    )


def final_cost(plan: Plan, *, base: Decimal, tier: int, is_free: bool) -> Decimal:
    """What is charged for jobs of this base cost in this tier: nothing when they are free."""
    if is_free:
        return ZERO
    return base * (HUNDRED - plan.tier_at(tier).discount_percent) / HUNDRED


def effective_discount_percent(*, base: Decimal, final: Decimal) -> Decimal:
    """Savings as a percentage of base cost; 0 when nothing was billable."""
    if base == ZERO:
        return ZERO
    return (base - final) / base * HUNDRED


def present_money(amount: Decimal) -> Decimal:
    """Round money half-up to 5 decimal places, for display and JSON only."""
    return amount.quantize(_MONEY_PLACES, rounding=ROUND_HALF_UP)


def present_percent(amount: Decimal) -> Decimal:
    """Round a percentage half-up to 2 decimal places, for display and JSON only."""
    return amount.quantize(_PERCENT_PLACES, rounding=ROUND_HALF_UP)


def present_money_in(amount: Decimal, *, currency: str, exact: bool = False) -> str:
    """Money as people read it: ``$1,234.57`` (symbol, or ``CHF 1,234.57`` for other codes), two
    decimals half-up; ``exact`` gives the 5-place figure with the code: ``1,234.56789 USD``."""
    if exact:
        return f"{present_money(amount):,f} {currency}"
    rounded = amount.quantize(_CENTS, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    figure = f"{abs(rounded):,f}"
    return f"{sign}{symbol}{figure}" if symbol else f"{sign}{currency}\u00a0{figure}"
