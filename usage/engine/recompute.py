"""Recomputing the derived job columns and the stored aggregates of a scope of organisations.

Two algorithms share the bookkeeping of ``_Pass``:

- ``recompute_after_writes`` (the end of every write, through ``usage_refresh``): jobs may have
  moved, so the free flags of every organisation with an allowance are re-derived and every month
  in scope that reaches a second tier is ranked again;
- ``reconcile`` (the nightly run and ``recompute_usage``): the aggregates are made equal to the
  jobs' grouping first, and then used to find the few months whose stored tiers or free flags
  disagree with the rules; only those are re-derived.

Callers hold the organisations' row locks in a transaction; ``usage_recompute`` takes them. Both
end by running the ``hooks.after_recompute`` callbacks (event detection) in that transaction.
"""

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from django.db import DataError, connection, transaction

from accounts.models import Organisation
from accounts.services import usage_version_bump
from usage.models import Job, StaleMonth
from usage.plans import plans_by_id, standard_plan_id
from usage.pricing import Plan, month_segments

from . import aggregation, checksum
from .derive import free_flags_sync, month_retier
from .hooks import after_recompute_run

logger = logging.getLogger(__name__)

OrgMonth = tuple[int, dt.date]
Progress = Callable[[int], None]


@dataclass
class RecomputeResult:
    """What a recompute looked at and what it had to change."""

    organisations: int = 0
    months: int = 0
    rows_corrected: int = 0
    jobs_retiered: int = 0
    free_flags_fixed: int = 0


class _Pass:
    """The state of one recompute: the plans and allowances of the scope, the months to redo."""

    def __init__(self, scope: dict[int, set[dt.date] | None], *, whole_table: bool) -> None:
        self.scope = scope
        self.result = RecomputeResult(organisations=len(scope))
        plans = plans_by_id()
        standard_id = standard_plan_id()
        rows = Organisation.objects.filter(pk__in=scope).values_list("pk", "plan_id", "free_job_allowance")
        self.plans = {pk: plans[plan_id or standard_id] for pk, plan_id, _ in rows}
        self.allowances = {pk: allowance for pk, _, allowance in rows}
        self.months_to_rewrite: set[OrgMonth] = set()
        # A scope too large to spell out in SQL is widened (see ``Scope.of``): the aggregates of
        # other organisations are then reconciled too, but only the locked ones get their flags
        # re-derived.
        self.base_scope = aggregation.Scope(everything=True) if whole_table else aggregation.Scope.of(scope)
        second_tiers = [plan.tiers[1].first_rank for plan in self.plans.values() if len(plan.tiers) > 1]
        self.second_tier_from = min(second_tiers, default=None)

    def sync_free(self, organisation_id: int) -> None:
        changed_months, changed_jobs = free_flags_sync(
            organisation_id=organisation_id, allowance=self.allowances[organisation_id]
        )
        self.result.free_flags_fixed += changed_jobs
        self.months_to_rewrite.update((organisation_id, month) for month in changed_months)

    def retier(self, org_month: OrgMonth, jobs: int, tiers: Iterable[int]) -> None:
        organisation_id, month = org_month
        changed = month_retier(
            organisation_id=organisation_id,
            month=month,
            jobs=jobs,
            plan=self.plans[organisation_id],
            tiers_seen=set(tiers),
        )
        if changed:
            self.months_to_rewrite.add(org_month)
            self.result.jobs_retiered += changed

    def finish(self, *, month_count: int | None) -> RecomputeResult:
        if self.result.rows_corrected:
            everything = self.base_scope.everything
            usage_version_bump(organisation_ids=None if everything else list(self.scope))
        self.result.months = (
            aggregation.stored_month_count(self.base_scope) if month_count is None else month_count
        )
        return self.result


def recompute_after_writes(scope: dict[int, set[dt.date] | None]) -> RecomputeResult:
    """Re-derive free flags and tiers of ``scope`` after writes, then rewrite its aggregates.

    ``scope`` maps organisation ids to the months written (None: all months). The caller holds
    the organisations' row locks.
    """
    if not scope:
        return RecomputeResult()
    state = _Pass(scope, whole_table=False)
    with_free_jobs = set(
        Job.objects.filter(is_free=True, organisation_id__in=scope)
        .values_list("organisation_id", flat=True)
        .distinct()
    )
    with_allowance = {pk for pk, allowance in state.allowances.items() if allowance}
    for organisation_id in sorted(with_free_jobs | with_allowance):
        state.sync_free(organisation_id)
    for organisation_id, month, jobs, tiers in aggregation.job_month_counts(state.base_scope):
        if organisation_id in state.plans:
            state.retier((organisation_id, month), jobs, tiers)
    usage_scope = state.base_scope
    if state.months_to_rewrite:
        usage_scope = usage_scope.union(aggregation.Scope.of_pairs(state.months_to_rewrite))
    state.result.rows_corrected = aggregation.stored_reconcile(
        usage_scope=usage_scope, language_scope=state.base_scope
    )
    result = state.finish(month_count=None)
    after_recompute_run(scope)
    return result


def reconcile(
    scope: dict[int, set[dt.date] | None], *, whole_table: bool, progress: Progress | None = None
) -> RecomputeResult:
    """Make the aggregates of ``scope`` equal the jobs' grouping, then re-derive the free flags
    and tiers that the corrected aggregates show to be wrong. The caller holds the row locks."""
    if not scope:
        return RecomputeResult()
    state = _Pass(scope, whole_table=whole_table)
    whole_orgs = all(months is None for months in scope.values())
    month_count = None
    found = _checksum_pass(state.base_scope, state.second_tier_from)
    if found is None:  # compare everything row by row
        row_diff_scope, wrong_free, tier_counts = state.base_scope, set(), {}
    else:  # row by row only where the checksums differ
        row_diff_scope = aggregation.Scope.of_pairs(found.differing) if found.differing else None
        wrong_free, tier_counts, month_count = found.wrong_free, found.tier_counts, found.months
    if row_diff_scope is not None:
        state.result.rows_corrected = aggregation.stored_reconcile(
            usage_scope=row_diff_scope, language_scope=row_diff_scope
        )
        if whole_orgs:
            # (the organisations of the differing months, all their months)
            organisations = (
                state.base_scope
                if found is None
                else aggregation.Scope.of(dict.fromkeys(pk for pk, _ in found.differing))
            )
            wrong_free.update(aggregation.stored_wrong_free_counts(organisations))
        for organisation_id, month, tier, jobs in aggregation.stored_tier_counts(
            row_diff_scope, second_tier_from=state.second_tier_from
        ):
            tier_counts.setdefault((organisation_id, month), {})[tier] = jobs
    if progress:
        progress(1)
    if whole_orgs:
        for organisation_id in sorted(wrong_free & state.allowances.keys()):
            state.sync_free(organisation_id)
    for org_month, counts in sorted(tier_counts.items()):
        jobs = sum(counts.values())
        plan = state.plans.get(org_month[0])
        if plan is not None and counts != _expected_tier_counts(plan, jobs):
            state.retier(org_month, jobs, counts)
    if state.months_to_rewrite:
        state.result.rows_corrected += aggregation.stored_reconcile(
            usage_scope=aggregation.Scope.of_pairs(state.months_to_rewrite)
        )
    if progress:
        progress(1)
    result = state.finish(month_count=month_count)
    if not whole_table or result.rows_corrected or result.jobs_retiered or result.free_flags_fixed:
        # The nightly run over every organisation that changed nothing leaves every figure as the
        # writes that made it left them, and those raised their events then: nothing to detect.
        after_recompute_run(scope)
    return result


def usage_recompute(
    *,
    organisation_ids: Collection[int] | None = None,
    months: Collection[dt.date] | None = None,
    progress: Progress | None = None,
) -> RecomputeResult:
    """Reconcile the derived job columns and the stored aggregates with the raw jobs.

    Scope: the given organisations (None: all) and months (None: all). Idempotent: a second run
    corrects nothing. Stale marks inside the scope are resolved as well.
    """
    with transaction.atomic():
        # NO KEY UPDATE: writers may still reference these rows (stale marks) while we work.
        organisations = Organisation.objects.select_for_update(no_key=True).order_by("pk")
        if organisation_ids is not None:
            organisations = organisations.filter(pk__in=organisation_ids)
        locked = list(organisations.values_list("pk", flat=True))
        month_set = None if months is None else set(months)
        scope: dict[int, set[dt.date] | None] = dict.fromkeys(locked, month_set)
        marks = StaleMonth.objects.filter(organisation_id__in=locked)
        if month_set is not None:
            marks = marks.filter(month__in=month_set)
        mark_ids = list(marks.values_list("id", flat=True))
        result = reconcile(
            scope, whole_table=organisation_ids is None and months is None, progress=progress
        )
        StaleMonth.objects.filter(id__in=mark_ids).delete()
    return result


def _checksum_pass(scope: aggregation.Scope, second_tier_from: int | None) -> checksum.ChecksumCheck | None:
    """The checksum pass where the database has one (PostgreSQL); None: diff row by row."""
    if connection.vendor != "postgresql":
        return None
    try:
        with transaction.atomic():  # a savepoint: a failed check leaves the transaction usable
            return checksum.checksum_check(scope, second_tier_from=second_tier_from)
    except DataError:  # a count beyond what the checksum's integers hold
        logger.warning(
            "usage checksum unavailable (a stored row past 2^31 jobs); "
            "comparing row by row"
        )
        return None


def _expected_tier_counts(plan: Plan, jobs: int) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for segment in month_segments(plan, jobs=jobs, free_jobs=0):
        counts[segment.tier] += segment.jobs
    return dict(counts)
