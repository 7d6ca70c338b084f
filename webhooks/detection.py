"""Usage events detected from the stored aggregates, at the end of every recompute.

Registered as a ``usage.engine.hooks`` callback: it runs in the recompute's transaction, with the
organisations' rows locked, and reads only ``MonthlyUsage`` rows of the recomputed scope (plus a
priced month report for organisations that set spend thresholds). Events are keyed so that each
happens at most once, whether an import, a second import or the nightly reconcile sees it first;
usage going down raises nothing.
"""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Max, Q, Sum

from accounts.models import Organisation
from usage import pricing
from usage.models import MonthlyUsage
from usage.plans import plans_by_id, standard_plan_id
from usage.selectors import month_costs

from .models import Event, EventType, SpendThreshold
from .services import deliveries_enqueue, event_record

Scope = dict[int, set[dt.date] | None]
Candidate = tuple[int, str, str, dict]  # organisation id, type, key, data


def _scope_filter(scope: Scope) -> Q:
    whole = [pk for pk, months in scope.items() if months is None]
    condition = Q(organisation_id__in=whole) if whole else Q(pk__in=[])
    for pk, months in scope.items():
        if months is not None:
            condition |= Q(organisation_id=pk, month__in=sorted(months))
    return condition


def _money(value: Decimal) -> str:
    """Money in a payload: a decimal string rounded half-up to 5 places as ``/usage`` rounds it
    (``"500.41000"``), never a float that would round it again in binary."""
    return f"{pricing.present_money(value):f}"


def _amount(value: Decimal) -> str:
    """A threshold as the owner set it, to the cent: ``"500.00"``."""
    return f"{value.quantize(Decimal('0.01')):f}"


def usage_events_detect(scope: Scope) -> int:
    """Record the usage events that the aggregates of ``scope`` now show; returns how many are new."""
    if not scope:
        return 0
    organisations = {
        organisation.pk: organisation for organisation in Organisation.objects.filter(pk__in=scope)
    }
    with_thresholds = set(
        SpendThreshold.objects.filter(organisation_id__in=organisations).values_list(
            "organisation_id", flat=True
        )
    )
    # Only the months that can raise an event: those with jobs past the first tier, and every
    # month of an organisation with spend thresholds. (A reconcile of every organisation would
    # otherwise group 24,000 months to find a hundred.)
    tiered: dict[int, set[dt.date]] = defaultdict(set)
    for organisation_id, month in (
        MonthlyUsage.objects.filter(_scope_filter(scope), tier__gt=1)
        .values_list("organisation_id", "month")
        .distinct()
    ):
        tiered[organisation_id].add(month)
    wanted = Q(organisation_id__in=with_thresholds) & _scope_filter(scope)
    for organisation_id, months in tiered.items():
        wanted |= Q(organisation_id=organisation_id, month__in=sorted(months))
    month_rows = (
        list(
            MonthlyUsage.objects.filter(wanted)
            .values("organisation_id", "month")
            .annotate(jobs=Sum("jobs"), top_tier=Max("tier"))
            .order_by("organisation_id", "month")
        )
        if tiered or with_thresholds
        else []
    )
    candidates: list[Candidate] = []
    candidates += _tier_candidates(organisations, month_rows)
    candidates += _free_jobs_candidates(organisations)
    candidates += _spend_candidates(organisations, month_rows)
    if not candidates:
        return 0
    existing = set()
    keys = [key for _, _, key, _ in candidates]
    for start in range(0, len(keys), 500):
        existing.update(Event.objects.filter(key__in=keys[start : start + 500]).values_list("key", flat=True))
    created, delivery_ids = 0, []
    for organisation_id, event_type, key, data in candidates:
        if key not in existing:
            event = event_record(
                organisation_id=organisation_id, event_type=event_type, key=key, data=data, enqueue=False
            )
            if event is not None:
                created += 1
                delivery_ids += event.delivery_ids
    if delivery_ids:  # all the deliveries of this recompute, queued together once it commits
        transaction.on_commit(lambda: deliveries_enqueue(delivery_ids=delivery_ids))
    return created


def _tier_candidates(organisations: dict[int, Organisation], month_rows: list[dict]) -> list[Candidate]:
    if not any(row["top_tier"] > 1 for row in month_rows):
        return []
    plans = plans_by_id()
    standard = standard_plan_id()
    candidates = []
    for row in month_rows:
        organisation = organisations[row["organisation_id"]]
        plan = plans[organisation.plan_id or standard]
        top = min(row["top_tier"], len(plan.tiers))
        for position in range(2, top + 1):
            tier = plan.tier_at(position)
            month = f"{row['month']:%Y-%m}"
            candidates.append(
                (
                    organisation.pk,
                    EventType.TIER_REACHED,
                    f"{EventType.TIER_REACHED}:{organisation.org_id}:{month}:{tier.name}",
                    {
                        "org_id": organisation.org_id,
                        "month": month,
                        "tier": tier.name,
                        "discount_percentage": float(tier.discount_percent),
                        "jobs": row["jobs"],
                    },
                )
            )
    return candidates


def _free_jobs_candidates(organisations: dict[int, Organisation]) -> list[Candidate]:
    with_allowance = {pk: org for pk, org in organisations.items() if org.free_job_allowance}
    if not with_allowance:
        return []
    totals = dict(
        MonthlyUsage.objects.filter(organisation_id__in=with_allowance)
        .values("organisation_id")
        .annotate(total=Sum("jobs"))
        .order_by()
        .values_list("organisation_id", "total")
    )
    candidates = []
    for pk, organisation in with_allowance.items():
        jobs = totals.get(pk) or 0
        if jobs >= organisation.free_job_allowance:
            allowance = organisation.free_job_allowance
            candidates.append(
                (
                    pk,
                    EventType.FREE_JOBS_EXHAUSTED,
                    f"{EventType.FREE_JOBS_EXHAUSTED}:{organisation.org_id}:{allowance}",
                    {"org_id": organisation.org_id, "free_job_allowance": allowance, "jobs": jobs},
                )
            )
    return candidates


def _spend_candidates(organisations: dict[int, Organisation], month_rows: list[dict]) -> list[Candidate]:
    thresholds: dict[int, list[Decimal]] = defaultdict(list)
    for organisation_id, amount in SpendThreshold.objects.filter(
        organisation_id__in=organisations
    ).values_list("organisation_id", "amount"):
        thresholds[organisation_id].append(amount)
    months: dict[int, list[dt.date]] = defaultdict(list)
    for row in month_rows:
        if row["organisation_id"] in thresholds:
            months[row["organisation_id"]].append(row["month"])
    if not months:
        return []
    # The one computation of a month's cost (usage_report's), for every organisation at once;
    # the marks are being resolved right now.
    costs = month_costs(organisations=organisations, months=months)
    plans, standard = plans_by_id(), standard_plan_id()
    candidates = []
    for (organisation_id, month), final_cost in sorted(costs.items()):
        organisation = organisations[organisation_id]
        for amount in sorted(thresholds[organisation_id]):
            if final_cost >= amount:
                label = f"{month:%Y-%m}"
                candidates.append(
                    (
                        organisation_id,
                        EventType.SPEND_THRESHOLD_CROSSED,
                        f"{EventType.SPEND_THRESHOLD_CROSSED}:{organisation.org_id}:{label}:{amount}",
                        {
                            "org_id": organisation.org_id,
                            "month": label,
                            "currency": plans[organisation.plan_id or standard].currency,
                            "threshold": _amount(amount),
                            "final_cost": _money(final_cost),
                        },
                    )
                )
    return candidates
