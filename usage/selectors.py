"""Reads of the usage domain. ``usage_report`` and ``usage_all_time`` are the only places that
turn stored aggregates into usage numbers; the API, the pages, the CSV export, the admin and the
nightly task all call them. (``month_costs`` is ``usage_report``'s month cost for many
organisations at once, for the spend alerts: the same rows priced by the same ``_PricedRow``.)"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q, Sum

from accounts.models import ApiKey, Organisation
from portal.hot_redis import cached_bytes, cached_bytes_set

from . import pricing
from .calls import api_calls_flush, api_calls_total
from .engine.refresh import usage_refresh
from .models import ApiCallCount, DailyUsage, LanguageUsage, MonthlyUsage
from .months import add_months, month_range
from .plans import plan_for_organisation, plans_by_id, standard_plan_id


@dataclass
class Usage:
    """Counts and exact (unrounded) money for a set of jobs."""

    jobs: int = 0
    completed_jobs: int = 0
    audio_duration_seconds: int = 0
    transcription_tokens: int = 0
    note_tokens: int = 0
    free_jobs: int = 0
    base_cost: Decimal = pricing.ZERO
    final_cost: Decimal = pricing.ZERO
    tiers: dict[str, int] = field(default_factory=dict)

    @property
    def savings(self) -> Decimal:
        return self.base_cost - self.final_cost

    @property
    def effective_discount_percentage(self) -> Decimal:
        return pricing.effective_discount_percent(base=self.base_cost, final=self.final_cost)

    @property
    def success_rate_percent(self) -> Decimal:
        return pricing.ZERO if not self.jobs else Decimal(self.completed_jobs) * 100 / self.jobs

    def _add(self, row: "_PricedRow") -> None:
        self.jobs += row.jobs
        self.completed_jobs += row.completed_jobs
        self.audio_duration_seconds += row.audio_duration_seconds
        self.transcription_tokens += row.transcription_tokens
        self.note_tokens += row.note_tokens
        self.free_jobs += row.jobs if row.is_free else 0
        self.base_cost += row.base
        self.final_cost += row.final
        self.tiers[row.tier_name] = self.tiers.get(row.tier_name, 0) + row.jobs


# The columns of a MonthlyUsage row that ``_PricedRow.of`` prices: tier, free flag, then its counts.
_PRICED_COLUMNS = (
    "tier",
    "is_free",
    "jobs",
    "completed_jobs",
    "audio_duration_seconds",
    "transcription_tokens",
    "note_tokens",
)


@dataclass(slots=True)
class _PricedRow:
    """One stored aggregate row with its money worked out once."""

    jobs: int
    completed_jobs: int
    audio_duration_seconds: int
    transcription_tokens: int
    note_tokens: int
    is_free: bool
    tier_name: str
    base: Decimal
    final: Decimal

    @classmethod
    def of(cls, plan: pricing.Plan, *, tier: int, is_free: bool, counts: tuple[int, ...]) -> "_PricedRow":
        jobs, completed, seconds, transcription, notes = counts
        base = pricing.base_cost(plan, jobs=jobs, transcription_tokens=transcription, note_tokens=notes)
        return cls(
            jobs=jobs,
            completed_jobs=completed,
            audio_duration_seconds=seconds,
            transcription_tokens=transcription,
            note_tokens=notes,
            is_free=is_free,
            tier_name=plan.tier_at(tier).name,
            base=base,
            final=pricing.final_cost(plan, base=base, tier=tier, is_free=is_free),
        )


@dataclass
class MonthUsage(Usage):
    month: dt.date = dt.date.min
    api_calls: int = 0
    highest_tier: int = 1

    def current_tier(self, plan: pricing.Plan) -> pricing.Tier:
        """The tier of the month's last job (the first tier when the month has no jobs)."""
        return plan.tier_at(self.highest_tier)

    def jobs_until_next_tier(self, plan: pricing.Plan) -> int | None:
        """How many more jobs this month reach the next tier; None in the last tier."""
        if self.highest_tier >= len(plan.tiers):
            return None
        return plan.tier_at(self.highest_tier + 1).first_rank - 1 - self.jobs


@dataclass
class KeyUsage(Usage):
    """One key's usage over the range, with the same figures month by month in ``months``."""

    api_key: ApiKey | None = None
    api_calls: int = 0
    months: dict[dt.date, Usage] = field(default_factory=dict)


@dataclass
class UsageReport:
    """Everything shown about an organisation's usage over a range of whole months."""

    organisation: Organisation
    plan: pricing.Plan
    start_month: dt.date
    end_month: dt.date
    totals: Usage
    months: list[MonthUsage]
    keys: dict[str, KeyUsage]
    web: KeyUsage
    languages: dict[str, int]
    api_calls: int
    free_jobs_left: int


def _empty_tiers(plan: pricing.Plan) -> dict[str, int]:
    return dict.fromkeys(plan.tier_names, 0)


def usage_report(
    *, organisation: Organisation, start_month: dt.date, end_month: dt.date, refresh: bool = True
) -> UsageReport:
    """Usage of ``organisation`` from ``start_month`` to ``end_month`` (first days, inclusive).

    Reads only stored aggregates (after resolving stale marks), so its cost does not depend on
    the number of jobs. Every month of the range is present; every plan tier is in every
    ``tiers``; ``keys`` holds, by name, every key with jobs in the range (revoked ones included).
    """
    if refresh:  # False only right after ``usage_version``, which has just resolved the marks
        usage_refresh(organisation_id=organisation.pk)
    plan = plan_for_organisation(organisation)
    months = {
        month: MonthUsage(month=month, tiers=_empty_tiers(plan))
        for month in month_range(start_month, end_month)
    }
    totals = Usage(tiers=_empty_tiers(plan))
    web = KeyUsage(tiers=_empty_tiers(plan))
    by_key: dict[int, KeyUsage] = {}

    rows = MonthlyUsage.objects.filter(
        organisation=organisation, month__gte=start_month, month__lte=end_month
    ).values_list("month", "api_key_id", *_PRICED_COLUMNS)
    for month_start, api_key_id, tier, is_free, *counts in rows:
        tier = min(tier, len(plan.tiers))
        priced = _PricedRow.of(plan, tier=tier, is_free=is_free, counts=tuple(counts))
        if api_key_id is None:
            bucket = web
        else:
            bucket = by_key.get(api_key_id) or by_key.setdefault(
                api_key_id, KeyUsage(tiers=_empty_tiers(plan))
            )
        month = months[month_start]
        key_month = bucket.months.get(month_start) or bucket.months.setdefault(
            month_start, Usage(tiers=_empty_tiers(plan))
        )
        for target in (month, totals, bucket, key_month):
            target._add(priced)
        month.highest_tier = max(month.highest_tier, tier)

    keys: dict[str, KeyUsage] = {}
    if by_key:
        for api_key in ApiKey.objects.filter(pk__in=by_key).order_by("name"):
            by_key[api_key.pk].api_key = api_key
            keys[api_key.name] = by_key[api_key.pk]

    languages: dict[str, int] = defaultdict(int)
    for language, jobs in (
        LanguageUsage.objects.filter(organisation=organisation, month__gte=start_month, month__lte=end_month)
        .values("language")
        .annotate(total=Sum("jobs"))
        .order_by()
        .values_list("language", "total")
    ):
        languages[language] += jobs

    api_calls = 0
    api_calls_flush()  # counts still in Redis first: the figures are exact
    for month, api_key_id, calls in ApiCallCount.objects.filter(
        organisation=organisation, month__gte=start_month, month__lte=end_month
    ).values_list("month", "api_key_id", "calls"):
        months[month].api_calls += calls
        api_calls += calls
        if api_key_id in by_key:
            by_key[api_key_id].api_calls += calls

    return UsageReport(
        organisation=organisation,
        plan=plan,
        start_month=start_month,
        end_month=end_month,
        totals=totals,
        months=list(months.values()),
        keys=keys,
        web=web,
        languages=dict(sorted(languages.items(), key=lambda item: (-item[1], item[0]))),
        api_calls=api_calls,
        free_jobs_left=free_jobs_left(organisation=organisation),
    )


def month_costs(
    *, organisations: Mapping[int, Organisation], months: Mapping[int, Collection[dt.date]]
) -> dict[tuple[int, dt.date], Decimal]:
    """The final cost of each organisation-month asked for (``months``: organisation primary key ->
    months; ``organisations`` holds each of them), exactly as ``usage_report`` gives it in
    ``months[i].final_cost``, read in one query whatever the number of organisations. Reads stored
    aggregates only: the caller resolves stale marks first (the recompute's event detection runs
    as it resolves them)."""
    wanted = [(pk, month) for pk, listed in months.items() for month in listed]
    costs = dict.fromkeys(wanted, pricing.ZERO)
    if not wanted:
        return costs
    plans = plans_by_id()
    standard = standard_plan_id()
    condition = Q(pk__in=[])
    for pk, listed in months.items():
        condition |= Q(organisation_id=pk, month__in=sorted(listed))
    rows = MonthlyUsage.objects.filter(condition).values_list("organisation_id", "month", *_PRICED_COLUMNS)
    for organisation_id, month, tier, is_free, *counts in rows:
        if (organisation_id, month) not in costs:
            continue
        plan = plans[organisations[organisation_id].plan_id or standard]
        priced = _PricedRow.of(plan, tier=min(tier, len(plan.tiers)), is_free=is_free, counts=tuple(counts))
        costs[(organisation_id, month)] += priced.final
    return costs


REPORT_CACHE_SECONDS = 3600
NOT_READ = object()  # ``usage_report_presented(cached=...)``: the caller did not read the cache


def usage_body_cache_key(
    *,
    organisation_id: int,
    version: int,
    present: Callable[[UsageReport], bytes],
    start_month: dt.date,
    end_month: dt.date,
) -> str:
    """The cache key of ``present``'s body for the organisation's usage ``version`` and the period."""
    return (
        f"usage-body:{organisation_id}:{version}:{present.__module__}.{present.__qualname__}:"
        f"{start_month:%Y-%m}:{end_month:%Y-%m}"
    )


def usage_report_presented(
    *,
    organisation: Organisation,
    start_month: dt.date,
    end_month: dt.date,
    present: Callable[[UsageReport], bytes],
    stale_marks: bool | None = None,
    cached: bytes | None | object = NOT_READ,
) -> bytes:
    """``present(usage_report(...))``, cached under the organisation's usage version.

    What ``present`` returns depends only on the report, and the report only on the usage
    version and the period, so bytes cached under the current version are exactly what a fresh
    report would give. ``stale_marks``: see ``usage_version``. With Redis a cached body is one
    GET (``portal.hot_redis.cached_bytes``). ``cached``: what the caller has already read under
    ``usage_body_cache_key`` for the organisation's loaded version (None: nothing), allowed only
    with ``stale_marks=False`` (that version is then the one used).
    """
    if cached is not NOT_READ and stale_marks is not False:
        raise ValueError("a body read ahead needs the version it was read for: stale_marks=False")
    version = usage_version(organisation=organisation, stale_marks=stale_marks)
    key = usage_body_cache_key(
        organisation_id=organisation.pk,
        version=version,
        present=present,
        start_month=start_month,
        end_month=end_month,
    )
    presented = cached_bytes(key) if cached is NOT_READ else cached
    if presented is None:
        report = usage_report(
            organisation=organisation, start_month=start_month, end_month=end_month, refresh=False
        )
        presented = present(report)
        cached_bytes_set(key, presented, timeout=REPORT_CACHE_SECONDS)
    return presented


def usage_version(*, organisation: Organisation, stale_marks: bool | None = None) -> int:
    """Resolve stale marks, then return the organisation's usage version (see the model).

    Reads keyed by this version may be cached: any change to what they show bumps it.
    ``stale_marks`` is what the caller read in the same statement as ``organisation`` (and so its
    ``usage_version``; see ``usage.engine.refresh.stale_marks_exist_sql``): False, there were none
    and the loaded version is current, with no query; True, they are resolved and the version
    read again; None (not known), they are looked for first.
    """
    if stale_marks is False:
        return organisation.usage_version
    resolved = usage_refresh(organisation_id=organisation.pk)
    if resolved is not None or stale_marks:
        # Re-read even when another read resolved the marks first: it bumped the version.
        organisation.usage_version = Organisation.objects.values_list("usage_version", flat=True).get(
            pk=organisation.pk
        )
    return organisation.usage_version


def free_jobs_left(*, organisation: Organisation) -> int:
    """max(0, allowance − jobs of all time); independent of any period."""
    if not organisation.free_job_allowance:
        return 0
    total = MonthlyUsage.objects.filter(organisation=organisation).aggregate(total=Sum("jobs"))["total"] or 0
    return max(0, organisation.free_job_allowance - total)


@dataclass
class AllTimeApiUsage:
    """All-time figures of the jobs submitted with an API key, and all API requests."""

    total_jobs: int
    completed_jobs: int
    total_duration_seconds: int
    jobs_by_language: dict[str, int]
    api_calls: int


def usage_all_time(*, organisation: Organisation, stale_marks: bool | None = None) -> AllTimeApiUsage:
    """The all-time contract's numbers for ``organisation``; constant query count.

    ``stale_marks`` False: the caller read, with the organisation, that it has no stale mark
    (``usage.engine.refresh.stale_marks_exist_sql``), so none is looked for.
    """
    if stale_marks is not False:
        usage_refresh(organisation_id=organisation.pk)
    by_language = (
        LanguageUsage.objects.filter(organisation=organisation, via_api=True)
        .values("language")
        .annotate(
            jobs_sum=Sum("jobs"), completed_sum=Sum("completed_jobs"), seconds=Sum("audio_duration_seconds")
        )
        .order_by()
        .values_list("language", "jobs_sum", "completed_sum", "seconds")
    )
    languages: dict[str, int] = {}
    total_jobs = completed = seconds = 0
    for language, jobs, done, duration in by_language:
        languages[language] = jobs
        total_jobs += jobs
        completed += done
        seconds += duration
    api_calls = api_calls_total(organisation_id=organisation.pk)  # those still in Redis included
    return AllTimeApiUsage(
        total_jobs=total_jobs,
        completed_jobs=completed,
        total_duration_seconds=seconds,
        jobs_by_language=dict(sorted(languages.items(), key=lambda item: (-item[1], item[0]))),
        api_calls=api_calls,
    )


@dataclass
class DayUsage:
    """One UTC day: its jobs by status and their exact money."""

    day: dt.date
    jobs: int = 0
    base_cost: Decimal = pricing.ZERO
    final_cost: Decimal = pricing.ZERO
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class DailyReport:
    """Every day of one month (through ``last_day``), and their sums, which are the month's."""

    organisation: Organisation
    plan: pricing.Plan
    month: dt.date
    days: list[DayUsage]
    totals: DayUsage


JOB_STATUSES = ("completed", "failed", "queued", "processing")
_STATUS_COLUMNS = ("completed_status_jobs", "failed_jobs", "queued_jobs", "processing_jobs")


def usage_daily(
    *,
    organisation: Organisation,
    month: dt.date,
    last_day: dt.date | None = None,
    plan: pricing.Plan | None = None,
    refresh: bool = True,
) -> DailyReport:
    """Jobs (by status) and costs of ``organisation`` per UTC day of ``month``, from the stored
    daily aggregate (constant query count); the days add up exactly to the month of
    ``usage_report``. Days run from the 1st to the month's end, or to ``last_day`` if earlier.

    A caller that has just read ``usage_report`` passes its plan and ``refresh=False``.
    """
    if refresh:
        usage_refresh(organisation_id=organisation.pk)
    plan = plan or plan_for_organisation(organisation)
    end = add_months(month, 1) - dt.timedelta(days=1)
    if last_day is not None:
        end = max(month, min(end, last_day))
    days = {
        month + dt.timedelta(days=offset): DayUsage(day=month + dt.timedelta(days=offset))
        for offset in range((end - month).days + 1)
    }
    totals = DayUsage(day=month, statuses=dict.fromkeys(JOB_STATUSES, 0))
    for day in days.values():
        day.statuses = dict.fromkeys(JOB_STATUSES, 0)
    rows = DailyUsage.objects.filter(organisation=organisation, month=month).values_list(
        "day", "tier", "is_free", "jobs", "transcription_tokens", "note_tokens", *_STATUS_COLUMNS
    )
    for day, tier, is_free, jobs, transcription, notes, *statuses in rows:
        tier = min(tier, len(plan.tiers))
        base = pricing.base_cost(plan, jobs=jobs, transcription_tokens=transcription, note_tokens=notes)
        final = pricing.final_cost(plan, base=base, tier=tier, is_free=is_free)
        bucket = days.get(day) or days.setdefault(
            day, DayUsage(day=day, statuses=dict.fromkeys(JOB_STATUSES, 0))
        )
        for target in (bucket, totals):
            target.jobs += jobs
            target.base_cost += base
            target.final_cost += final
            for status, count in zip(JOB_STATUSES, statuses, strict=True):
                target.statuses[status] += count
    return DailyReport(
        organisation=organisation,
        plan=plan,
        month=month,
        days=[days[day] for day in sorted(days)],
        totals=totals,
    )


def usage_status_counts(
    *, organisation: Organisation, start_month: dt.date, end_month: dt.date
) -> dict[str, int]:
    """Jobs of the months from ``start_month`` to ``end_month`` by status (one query on the daily
    aggregate; call after a read that resolved the stale marks, such as ``usage_report``)."""
    sums = DailyUsage.objects.filter(
        organisation=organisation, month__gte=start_month, month__lte=end_month
    ).aggregate(**{column: Sum(column) for column in _STATUS_COLUMNS})
    return {status: sums[column] or 0 for status, column in zip(JOB_STATUSES, _STATUS_COLUMNS, strict=True)}


def usage_first_month(*, organisation: Organisation) -> dt.date | None:
    """The organisation's first month with jobs (stored aggregates; one query), None without any."""
    return (
        MonthlyUsage.objects.filter(organisation=organisation)
        .order_by("month")
        .values_list("month", flat=True)
        .first()
    )
