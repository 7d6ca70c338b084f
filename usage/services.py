"""Writes of the usage domain: jobs, stale marks, and the recompute of stored aggregates.

How aggregates stay fresh: every write of jobs or pricing adds ``StaleMonth`` marks for the
organisation-months it touched, in the same transaction. ``usage_refresh`` resolves the marks of
one organisation: it brings the derived columns of ``Job`` (``tier``, ``is_free``) up to date for
those months and rewrites their ``MonthlyUsage``/``LanguageUsage`` rows. Writers call it at the end
of each batch, and every read calls it first, so a read never sees a stale month. The nightly
``usage_recompute`` reconciles everything with the raw jobs and counts what it corrected.
"""

import datetime as dt
import logging
from array import array
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import DataError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Organisation

from . import aggregation
from .models import Job, StaleMonth
from .months import date_from_db, month_of
from .plans import plans_by_id, standard_plan_id
from .pricing import Plan, month_segments

logger = logging.getLogger(__name__)

OrgMonth = tuple[int, dt.date]
USAGE_KEY_FIELDS = ("organisation_id", "month", "api_key_id", "tier", "is_free")
USAGE_VALUE_FIELDS = (
    "jobs",
    "completed_jobs",
    "audio_duration_seconds",
    "transcription_tokens",
    "note_tokens",
)
LANGUAGE_KEY_FIELDS = ("organisation_id", "month", "language", "via_api")
LANGUAGE_VALUE_FIELDS = ("jobs", "completed_jobs", "audio_duration_seconds")
_COMPLETED = Q(has_transcript=True, has_lrc=True)


@dataclass
class RecomputeResult:
    """What a recompute looked at and what it had to change."""

    organisations: int = 0
    months: int = 0
    rows_corrected: int = 0
    jobs_retiered: int = 0
    jobs_refreed: int = 0

    def merge(self, other: "RecomputeResult") -> None:
        self.organisations += other.organisations
        self.months += other.months
        self.rows_corrected += other.rows_corrected
        self.jobs_retiered += other.jobs_retiered
        self.jobs_refreed += other.jobs_refreed


def usage_version_bump(*, organisation_ids: Collection[int] | None) -> None:
    """Invalidate cached usage of these organisations (None: all of them)."""
    organisations = Organisation.objects.all()
    if organisation_ids is not None:
        organisations = organisations.filter(pk__in=organisation_ids)
    organisations.update(usage_version=F("usage_version") + 1)


def usage_mark_stale(*, organisation_id: int, months: Iterable[dt.date] | None) -> None:
    """Record that these months of the organisation (None: all of them) need recomputing."""
    if months is None:
        StaleMonth.objects.create(organisation_id=organisation_id, month=None)
        return
    StaleMonth.objects.bulk_create(
        StaleMonth(organisation_id=organisation_id, month=month) for month in sorted(set(months))
    )


def usage_refresh(*, organisation_id: int) -> RecomputeResult | None:
    """Resolve the organisation's stale marks, if any; costs one query when there are none."""
    return usage_refresh_organisations(organisation_ids=[organisation_id])


def usage_refresh_organisations(*, organisation_ids: Collection[int]) -> RecomputeResult | None:
    """Resolve the stale marks of several organisations in one recompute (the end of an import)."""
    if not StaleMonth.objects.filter(organisation_id__in=organisation_ids).exists():
        return None
    with transaction.atomic():
        # Serialise recomputes of an organisation; writers never wait on this lock.
        locked = Organisation.objects.select_for_update().filter(pk__in=organisation_ids).order_by("pk")
        list(locked.values_list("pk"))
        marks = StaleMonth.objects.filter(organisation_id__in=organisation_ids)
        # Exactly the marks seen now are deleted at the end, so one added meanwhile survives. An
        # import leaves a mark per batch and month: keep their ids compact, the months distinct.
        mark_ids = array("q", marks.values_list("id", flat=True).iterator(chunk_size=10_000))
        if not mark_ids:
            return None
        scope: dict[int, set[dt.date] | None] = {}
        for organisation_id, month in (
            marks.filter(id__lte=max(mark_ids)).values_list("organisation_id", "month").distinct()
        ):
            if month is None or (organisation_id in scope and scope[organisation_id] is None):
                scope[organisation_id] = None
            else:
                scope.setdefault(organisation_id, set()).add(month)
        result = _recompute_locked(scope)
        for start in range(0, len(mark_ids), 500):
            StaleMonth.objects.filter(id__in=mark_ids[start : start + 500].tolist()).delete()
    return result


def usage_refresh_all() -> int:
    """Resolve every organisation's stale marks; returns how many organisations had some."""
    organisation_ids = set(StaleMonth.objects.values_list("organisation_id", flat=True).distinct())
    for organisation_id in sorted(organisation_ids):
        usage_refresh(organisation_id=organisation_id)
    return len(organisation_ids)


def usage_recompute(
    *,
    organisation_ids: Collection[int] | None = None,
    months: Collection[dt.date] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RecomputeResult:
    """Reconcile the derived job columns and the stored aggregates with the raw jobs.

    Scope: the given organisations (None: all) and months (None: all). Idempotent: a second run
    corrects nothing. Stale marks inside the scope are resolved as well.
    """
    with transaction.atomic():
        organisations = Organisation.objects.select_for_update().order_by("pk")
        if organisation_ids is not None:
            organisations = organisations.filter(pk__in=organisation_ids)
        locked = list(organisations.values_list("pk", flat=True))
        month_set = None if months is None else set(months)
        scope: dict[int, set[dt.date] | None] = dict.fromkeys(locked, month_set)
        marks = StaleMonth.objects.filter(organisation_id__in=locked)
        if month_set is not None:
            marks = marks.filter(month__in=month_set)
        mark_ids = list(marks.values_list("id", flat=True))
        result = _recompute_locked(
            scope, whole_table=organisation_ids is None and months is None, force=False, progress=progress
        )
        StaleMonth.objects.filter(id__in=mark_ids).delete()
    return result


def _recompute_locked(
    scope: dict[int, set[dt.date] | None],
    *,
    whole_table: bool = False,
    force: bool = True,
    progress: Callable[[int], None] | None = None,
) -> RecomputeResult:
    """The recompute proper; the caller holds the organisations' row locks in a transaction.

    ``force`` (after writes): re-derive the free flags of every organisation with an allowance
    and re-rank every month in scope that reaches a second tier, since jobs may have moved.
    Without it (the reconcile): trust a month whose tier counts match its plan's bands, and an
    organisation whose free count matches its allowance; re-derive only the others.
    """
    result = RecomputeResult(organisations=len(scope))
    if not scope:
        return result
    plans = plans_by_id()
    standard_id = standard_plan_id()
    org_rows = Organisation.objects.filter(pk__in=scope).values_list("pk", "plan_id", "free_job_allowance")
    org_plan = {pk: plans[plan_id or standard_id] for pk, plan_id, _ in org_rows}
    allowances = {pk: allowance for pk, _, allowance in org_rows}
    redo: set[OrgMonth] = set()
    month_count: int | None = None  # organisation-months in scope, when a check has counted them

    def sync_free(organisation_id: int) -> None:
        changed_months, changed_jobs = _sync_free_flags(organisation_id, allowances[organisation_id])
        result.jobs_refreed += changed_jobs
        redo.update((organisation_id, month) for month in changed_months)

    # 1. Free flags are a prefix of each organisation's jobs of all time.
    if force:
        with_free_jobs = set(
            Job.objects.filter(is_free=True, organisation_id__in=scope)
            .values_list("organisation_id", flat=True)
            .distinct()
        )
        with_allowance = {pk for pk, allowance in allowances.items() if allowance}
        for organisation_id in sorted(with_free_jobs | with_allowance):
            sync_free(organisation_id)

    # A scope too large to spell out in SQL is widened (see ``Scope.of``): the aggregates of other
    # organisations are then reconciled too, but only the locked ones get their flags re-derived.
    base_scope = aggregation.Scope(everything=True) if whole_table else aggregation.Scope.of(scope)
    second_tiers = [plan.tiers[1].first_rank for plan in org_plan.values() if len(plan.tiers) > 1]
    second_tier_from = min(second_tiers, default=None)

    def retier(org_month: OrgMonth, jobs: int, tiers: Iterable[int]) -> None:
        changed = _retier_month(*org_month, jobs=jobs, plan=org_plan[org_month[0]], tiers_seen=set(tiers))
        if changed:
            redo.add(org_month)
            result.jobs_retiered += changed

    if force:
        # 2. After writes, rank again every month in scope that reaches a second tier.
        for organisation_id, month, jobs, tiers in aggregation.job_month_counts(base_scope):
            if organisation_id in org_plan:
                retier((organisation_id, month), jobs, tiers)
        usage_scope = base_scope.union(aggregation.Scope.of_pairs(redo)) if redo else base_scope
        result.rows_corrected = aggregation.stored_reconcile(
            usage_scope=usage_scope, language_scope=base_scope
        )
    else:
        # 2. The reconcile: make the aggregates equal the jobs' grouping, then use them to find
        #    the few months whose stored tiers or free flags disagree with the rules.
        whole_orgs = all(some is None for some in scope.values())
        check = _checksum_check(base_scope, second_tier_from)
        if check is None:  # compare everything row by row
            exact, wrong_free, tier_counts = base_scope, set(), {}
        else:  # row by row only where the checksums differ
            exact = aggregation.Scope.of_pairs(check.differing) if check.differing else None
            wrong_free, tier_counts, month_count = check.wrong_free, check.tier_counts, check.months
        if exact is not None:
            result.rows_corrected = aggregation.stored_reconcile(usage_scope=exact, language_scope=exact)
            if whole_orgs:
                # (the organisations of the differing months, all their months)
                orgs = (
                    base_scope
                    if check is None
                    else aggregation.Scope.of(dict.fromkeys(o for o, _ in check.differing))
                )
                wrong_free.update(aggregation.stored_wrong_free_counts(orgs))
            for organisation_id, month, tier, jobs in aggregation.stored_tier_counts(
                exact, second_tier_from=second_tier_from
            ):
                tier_counts.setdefault((organisation_id, month), {})[tier] = jobs
        if progress:
            progress(1)
        if whole_orgs:
            for organisation_id in sorted(wrong_free & allowances.keys()):
                sync_free(organisation_id)
        for org_month, counts in sorted(tier_counts.items()):
            jobs = sum(counts.values())
            if org_month[0] in org_plan and counts != _expected_tier_counts(org_plan[org_month[0]], jobs):
                retier(org_month, jobs, counts)
        if redo:
            result.rows_corrected += aggregation.stored_reconcile(
                usage_scope=aggregation.Scope.of_pairs(redo)
            )
    if progress:
        progress(1)
    if result.rows_corrected:
        usage_version_bump(organisation_ids=None if base_scope.everything else list(scope))
    result.months = aggregation.stored_month_count(base_scope) if month_count is None else month_count
    return result


def _checksum_check(
    scope: aggregation.Scope, second_tier_from: int | None
) -> aggregation.ChecksumCheck | None:
    """The checksum pass where the database has one (PostgreSQL); None: diff row by row."""
    if connection.vendor != "postgresql":
        return None
    try:
        with transaction.atomic():  # a savepoint: a failed check leaves the transaction usable
            return aggregation.checksum_check(scope, second_tier_from=second_tier_from)
    except DataError:  # a count beyond what the checksum's integers hold
        logger.warning(
            "usage checksum unavailable (a stored row past 2^31 jobs or a job past 2^32 tokens); "
            "comparing row by row"
        )
        return None


def _expected_tier_counts(plan: Plan, jobs: int) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for segment in month_segments(plan, jobs=jobs, free_jobs=0):
        counts[segment.tier] += segment.jobs
    return dict(counts)


def _sync_free_flags(organisation_id: int, allowance: int) -> tuple[set[dt.date], int]:
    """Flag exactly the organisation's first ``allowance`` jobs of all time as free."""
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


def _retier_month(
    organisation_id: int, month: dt.date, *, jobs: int, plan: Plan, tiers_seen: set[int]
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


class JobInput(NamedTuple):
    """A validated job as loaded from the platform, ready to be written."""

    organisation_id: int
    api_key_id: int | None
    external_id: str
    created_at: dt.datetime
    language: str
    audio_duration_seconds: int
    status: str
    has_transcript: bool
    has_lrc: bool
    transcription_tokens: int
    note_tokens: int


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    touched: set[OrgMonth] = field(default_factory=set)


_INSERT_COLUMNS = (
    "organisation_id",
    "api_key_id",
    "source",
    "external_id",
    "created_at",
    "month",
    "language",
    "audio_duration_seconds",
    "status",
    "has_transcript",
    "has_lrc",
    "transcription_tokens",
    "note_tokens",
    "tier",
    "is_free",
)
# tier and is_free are derived: an update leaves them for the refresh to correct.
_UPDATE_COLUMNS = _INSERT_COLUMNS[1:2] + _INSERT_COLUMNS[2:3] + _INSERT_COLUMNS[4:13]


def _upsert_sql() -> str:
    table = connection.ops.quote_name(Job._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(column) for column in _INSERT_COLUMNS)
    placeholders = ", ".join(["%s"] * len(_INSERT_COLUMNS))
    updates = ", ".join(
        f"{connection.ops.quote_name(column)} = excluded.{connection.ops.quote_name(column)}"
        for column in _UPDATE_COLUMNS
    )
    # Only identifiers from the model are interpolated; values go through placeholders.
    statement = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608
    return statement + f"ON CONFLICT (organisation_id, external_id) DO UPDATE SET {updates}"


def jobs_upsert(*, jobs: Iterable[JobInput]) -> UpsertResult:
    """Insert or update jobs by (organisation, external_id), in order, and mark their months stale.

    A job keeps its insertion position when updated; within one call the last version of a
    duplicated job wins. The caller resolves the marks (``usage_refresh``) when its batch is done.
    One prepared statement run for every row (the same SQL on SQLite and PostgreSQL) is several
    times faster than the ORM's ``bulk_create`` here.
    """
    latest: dict[tuple[int, str], JobInput] = {}
    for job in jobs:
        latest[(job.organisation_id, job.external_id)] = job
    result = UpsertResult()
    if not latest:
        return result
    adapt_datetime, adapt_date = _datetime_adapter(), connection.ops.adapt_datefield_value
    rows = []
    for job in latest.values():
        result.touched.add((job.organisation_id, month_of(job.created_at)))
        rows.append((*_job_values(job, adapt_datetime, adapt_date), 1, False))
    with transaction.atomic():
        # One query finds the jobs that exist already, so their previous months are refreshed too
        # when a job moves. It filters on external_id alone (its own index) and matches the pairs
        # here: IN lists on both columns of the unique index make SQLite probe every combination.
        existing = Job.objects.filter(external_id__in={key[1] for key in latest})
        for organisation_id, external_id, month in existing.values_list(
            "organisation_id", "external_id", "month"
        ):
            if (organisation_id, external_id) in latest:
                result.touched.add((organisation_id, month))
                result.updated += 1
        with connection.cursor() as cursor:
            cursor.executemany(_upsert_sql(), rows)
        result.created = len(latest) - result.updated
        _mark_touched(result.touched)
    return result


# The columns of a staging table for ``jobs_upsert_staged``: the file's line number, then a job.
STAGED_COLUMNS = ("line", *_INSERT_COLUMNS[:13])


def _datetime_adapter() -> Callable[[dt.datetime], object]:
    """Django's adapter of datetimes for this database, with a shortcut on SQLite for the UTC
    datetimes the importer makes (SQLite stores them as naive UTC text)."""
    adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor != "sqlite" or connection.timezone_name != "UTC":
        return adapt
    return lambda value: str(value.replace(tzinfo=None)) if value.tzinfo is dt.UTC else adapt(value)


def _job_values(job: JobInput, adapt_datetime, adapt_date) -> tuple:
    """A job's values for ``_INSERT_COLUMNS[:13]`` (tier and free flag are the refresh's)."""
    return (
        job.organisation_id,
        job.api_key_id,
        "api" if job.api_key_id else "web",
        job.external_id,
        adapt_datetime(job.created_at),
        adapt_date(month_of(job.created_at)),
        job.language,
        job.audio_duration_seconds,
        job.status,
        job.has_transcript,
        job.has_lrc,
        job.transcription_tokens,
        job.note_tokens,
    )


def staged_job_rows(jobs: Iterable[tuple[int, JobInput]]) -> list[tuple]:
    """Rows of a staging table, in ``STAGED_COLUMNS`` order, adapted for this database."""
    adapt_datetime, adapt_date = _datetime_adapter(), connection.ops.adapt_datefield_value
    return [(line, *_job_values(job, adapt_datetime, adapt_date)) for line, job in jobs]


def jobs_upsert_staged(*, table: str, lines: tuple[int, int], repeats: bool = True) -> UpsertResult:
    """Upsert the jobs staged in ``table`` (see ``STAGED_COLUMNS``) on lines ``lines[0]..lines[1]``.

    The same rules as ``jobs_upsert``, applied by the database in one statement: a job keyed
    more than once gets the values of its last line and the position of its first. A caller
    that knows no job repeats within the lines passes ``repeats=False`` and saves the sorting
    that rule needs. The months touched are marked stale in the same transaction; the caller
    resolves them when done.
    """
    q = connection.ops.quote_name
    job_table = q(Job._meta.db_table)
    staged = q(table)
    where = "s.line BETWEEN %s AND %s"
    params = list(lines)
    result = UpsertResult()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The jobs that exist already, so their previous months are refreshed too.
            cursor.execute(
                f"SELECT j.organisation_id, j.month, COUNT(*) FROM {job_table} j "  # noqa: S608
                f"JOIN (SELECT DISTINCT s.organisation_id, s.external_id FROM {staged} s WHERE {where}) s "
                "ON j.organisation_id = s.organisation_id AND j.external_id = s.external_id "
                "GROUP BY j.organisation_id, j.month",
                params,
            )
            for organisation_id, month, jobs in cursor.fetchall():
                result.touched.add((organisation_id, date_from_db(month)))
                result.updated += jobs
            cursor.execute(
                f"SELECT DISTINCT s.organisation_id, s.month FROM {staged} s WHERE {where}",  # noqa: S608
                params,
            )
            result.touched.update((organisation_id, date_from_db(month)) for organisation_id, month in cursor)
            columns = ", ".join(q(column) for column in _INSERT_COLUMNS)
            values = ", ".join(q(column) for column in _INSERT_COLUMNS[:13])
            updates = ", ".join(f"{q(column)} = excluded.{q(column)}" for column in _UPDATE_COLUMNS)
            if repeats:  # one row per job: its last line, in the order of its first
                job_key = "PARTITION BY s.organisation_id, s.external_id"
                rows = (
                    f"FROM (SELECT s.*, ROW_NUMBER() OVER ({job_key} ORDER BY s.line DESC) AS newest,"  # noqa: S608
                    f" MIN(s.line) OVER ({job_key}) AS first_line FROM {staged} s WHERE {where}) s"
                    " WHERE s.newest = 1 ORDER BY s.first_line"
                )
            else:
                rows = f"FROM {staged} s WHERE {where} ORDER BY s.line"
            # Only identifiers are interpolated; the line range goes through placeholders.
            cursor.execute(
                f"INSERT INTO {job_table} ({columns}) SELECT {values}, 1, %s {rows} "  # noqa: S608
                f"ON CONFLICT (organisation_id, external_id) DO UPDATE SET {updates}",
                [False, *params],
            )
            result.created = cursor.rowcount - result.updated
        _mark_touched(result.touched)
    return result


def _mark_touched(touched: Iterable[OrgMonth]) -> None:
    """One stale mark per organisation-month, written with one prepared statement."""
    q = connection.ops.quote_name
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    adapt_date = connection.ops.adapt_datefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {q(StaleMonth._meta.db_table)} (organisation_id, month, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s)",
            [(organisation_id, adapt_date(month), now) for organisation_id, month in sorted(touched)],
        )


def organisation_free_allowance_set(*, organisation: Organisation, allowance: int) -> Organisation:
    """Change the free-job allowance; only the months whose free jobs change are recomputed."""
    if allowance < 0:
        raise ValueError("the free job allowance cannot be negative")
    with transaction.atomic():
        Organisation.objects.filter(pk=organisation.pk).update(free_job_allowance=allowance)
        organisation.free_job_allowance = allowance
        usage_version_bump(organisation_ids=[organisation.pk])
        months, _ = _sync_free_flags(organisation.pk, allowance)
        if months:
            usage_mark_stale(organisation_id=organisation.pk, months=months)
    usage_refresh(organisation_id=organisation.pk)
    return organisation


def _tier_ladder(plan_id: int | None) -> list[int]:
    from .models import PricingTier

    plan_id = plan_id or standard_plan_id()
    return list(
        PricingTier.objects.filter(plan_id=plan_id)
        .order_by("first_rank")
        .values_list("first_rank", flat=True)
    )


def organisation_plan_set(*, organisation: Organisation, plan) -> Organisation:
    """Move an organisation to another plan (None: standard); re-tiers its jobs if the ranks differ.

    Prices and discounts are applied when usage is read, so a plan whose tier ranks are the same
    needs no recompute at all. The comparison is with the plan stored now, whatever the instance
    passed in already carries.
    """
    with transaction.atomic():
        stored_plan_id = (
            Organisation.objects.select_for_update().values_list("plan_id", flat=True).get(pk=organisation.pk)
        )
        organisation.plan = plan
        Organisation.objects.filter(pk=organisation.pk).update(plan=plan)
        usage_version_bump(organisation_ids=[organisation.pk])
        if _tier_ladder(plan.pk if plan else None) != _tier_ladder(stored_plan_id):
            usage_mark_stale(organisation_id=organisation.pk, months=None)
    usage_refresh(organisation_id=organisation.pk)
    return organisation


def _organisations_priced_by(plan_id: int):
    from .models import STANDARD_PLAN_NAME, PricingPlan

    if PricingPlan.objects.filter(pk=plan_id, name=STANDARD_PLAN_NAME).exists():
        return Organisation.objects.filter(Q(plan_id=plan_id) | Q(plan__isnull=True))
    return Organisation.objects.filter(plan_id=plan_id)


def pricing_plan_changed(*, plan_id: int) -> None:
    """Call after any edit of a plan or its tiers: prices are applied at read time, so only
    cached reads of the organisations it prices need invalidating."""
    usage_version_bump(organisation_ids=list(_organisations_priced_by(plan_id).values_list("pk", flat=True)))


def pricing_plan_tiers_changed(*, plan_id: int) -> int:
    """Mark every organisation priced by this plan as stale (all months); returns how many.

    Call after the plan's tier ranks changed; organisations are refreshed at their next read or
    by the nightly run.
    """
    organisation_ids = list(_organisations_priced_by(plan_id).values_list("pk", flat=True))
    StaleMonth.objects.bulk_create(StaleMonth(organisation_id=pk, month=None) for pk in organisation_ids)
    usage_version_bump(organisation_ids=organisation_ids)
    return len(organisation_ids)


def job_save(*, job: Job) -> Job:
    """Save a job edited by hand (admin): derive its month and source, validate, refresh usage.

    Both the month (and organisation) it leaves and the one it lands in are brought up to date.
    """
    previous = (
        Job.objects.filter(pk=job.pk).values_list("organisation_id", "month").first() if job.pk else None
    )
    job.month = month_of(job.created_at)
    job.source = Job.Source.API if job.api_key_id else Job.Source.WEB
    if job.api_key_id and job.api_key.organisation_id != job.organisation_id:
        raise ValidationError({"api_key": "This key belongs to another organisation."})
    job.full_clean()
    touched = {(job.organisation_id, job.month)}
    if previous:
        touched.add(previous)
    with transaction.atomic():
        job.save()
        _mark_touched(touched)
    for organisation_id in sorted({organisation_id for organisation_id, _ in touched}):
        usage_refresh(organisation_id=organisation_id)
    return job


def job_delete(*, job: Job) -> None:
    """Delete a job and refresh the usage of its month."""
    organisation_id, month = job.organisation_id, job.month
    with transaction.atomic():
        job.delete()
        usage_mark_stale(organisation_id=organisation_id, months=[month])
    usage_refresh(organisation_id=organisation_id)
