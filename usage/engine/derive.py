"""The derived columns of a job: its tier (from its rank within the month) and its free flag."""

import datetime as dt

from django.db.models import Q

from usage.models import Job, PricingTier
from usage.plans import standard_plan_id
from usage.pricing import Plan


def tier_ladder(*, plan_id: int | None) -> list[int]:
    """The first ranks of a plan's tiers, in order (None: the standard plan). Two plans with the
    same ladder rank jobs the same way, so moving between them needs no recompute."""
    plan_id = plan_id or standard_plan_id()
    tiers = PricingTier.objects.filter(plan_id=plan_id).order_by("first_rank")
    return list(tiers.values_list("first_rank", flat=True))


def free_flags_sync(*, organisation_id: int, allowance: int) -> tuple[set[dt.date], int]:
    """Flag exactly the organisation's first ``allowance`` jobs of all time as free.

    Returns the months whose jobs changed and how many jobs changed.
    """
    jobs = Job.objects.filter(organisation_id=organisation_id)
    if allowance > 0:
        cutoff = (
            jobs.order_by("month", "created_at", "id").values_list("created_at", "id")[
                allowance - 1 : allowance
            ]
        ).first()
        if cutoff is None:  # fewer jobs than the allowance: all are free
            should_be_free = Q()
        else:
            should_be_free = Q(created_at__lt=cutoff[0]) | Q(created_at=cutoff[0], id__lte=cutoff[1])
        to_free = jobs.filter(should_be_free, is_free=False)
        to_charge = jobs.filter(is_free=True).exclude(should_be_free) if cutoff is not None else jobs.none()
    else:
        to_free = jobs.none()
        to_charge = jobs.filter(is_free=True)
    months = set(to_free.values_list("month", flat=True).distinct())
    months |= set(to_charge.values_list("month", flat=True).distinct())
    if not months:
        return set(), 0
    changed = to_free.update(is_free=True) + to_charge.update(is_free=False)
    return months, changed


def month_retier(
    *, organisation_id: int, month: dt.date, jobs: int, plan: Plan, tiers_seen: set[int]
) -> int:
    """Store on each job of the month the tier of its rank; returns how many jobs changed."""
    bands = [
        (position, tier.first_rank)
        for position, tier in enumerate(plan.tiers, start=1)
        if tier.first_rank <= jobs
    ]
    if len(bands) == 1 and tiers_seen <= {1}:
        return 0  # below the second tier every job is tier 1: nothing to rank, nothing to query
    month_jobs = Job.objects.filter(organisation_id=organisation_id, month=month)
    if len(bands) == 1:
        return month_jobs.exclude(tier=1).update(tier=1)
    ranked = month_jobs.order_by("created_at", "id").values_list("created_at", "id")
    changed = 0
    lower = None
    for index, (position, _) in enumerate(bands):
        band = month_jobs
        if lower is not None:
            band = band.filter(Q(created_at__gt=lower[0]) | Q(created_at=lower[0], id__gt=lower[1]))
        upper = None
        if index + 1 < len(bands):
            last_rank = bands[index + 1][1] - 1
            upper = ranked[last_rank - 1 : last_rank].first()
            if upper is None:  # the month shrank under us; its stale mark will bring us back
                return changed
            band = band.filter(Q(created_at__lt=upper[0]) | Q(created_at=upper[0], id__lte=upper[1]))
        changed += band.exclude(tier=position).update(tier=position)
        lower = upper
    return changed
