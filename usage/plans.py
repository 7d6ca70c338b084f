"""Loading pricing plans from the database into the pure ``usage.pricing.Plan``."""

from .models import STANDARD_PLAN_NAME, PricingPlan, PricingTier
from .pricing import Plan, Tier


def _to_plan(plan: PricingPlan, *, tiers: list[PricingTier] | None = None) -> Plan:
    """The pure plan of a row; ``tiers`` (in rank order) saves reading ``plan.tiers`` again."""
    if tiers is None:
        tiers = sorted(plan.tiers.all(), key=lambda tier: tier.first_rank)
    return Plan(
        name=plan.name,
        per_job_fee=plan.per_job_fee,
        transcription_rate=plan.transcription_rate,
        note_rate=plan.note_rate,
        currency=plan.currency,
        tiers=tuple(
            Tier(name=tier.name, first_rank=tier.first_rank, discount_percent=tier.discount_percent)
            for tier in tiers
        ),
    )


def plans_by_id() -> dict[int, Plan]:
    """Every plan, keyed by primary key (two queries)."""
    return {plan.pk: _to_plan(plan) for plan in PricingPlan.objects.prefetch_related("tiers")}


def standard_plan_id() -> int:
    return PricingPlan.objects.values_list("pk", flat=True).get(name=STANDARD_PLAN_NAME)


def plan_for_organisation(organisation) -> Plan:
    """The plan that prices ``organisation``: its own, or 'standard' when it has none (one query)."""
    tiers = PricingTier.objects.select_related("plan").order_by("first_rank")
    if organisation.plan_id is not None:
        tiers = list(tiers.filter(plan_id=organisation.plan_id))
    else:
        tiers = list(tiers.filter(plan__name=STANDARD_PLAN_NAME))
    if not tiers:  # a plan without tiers is refused by Plan itself, with its name
        plan = PricingPlan.objects.get(pk=organisation.plan_id) if organisation.plan_id else None
        return _to_plan(plan or PricingPlan.objects.get(name=STANDARD_PLAN_NAME))
    return _to_plan(tiers[0].plan, tiers=tiers)
