"""Writes of the usage domain: jobs and the billing settings of organisations and plans.

Every write marks the organisation-months it touched as stale in its own transaction and
resolves the marks when its batch is done (``usage.engine.refresh``), so usage is fresh at the
next read whatever month the write belongs to.
"""

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q

from accounts.models import Organisation
from accounts.services import usage_version_bump
from portal.db import prepared_cursor
from portal.errors import DomainError

from .engine.derive import free_flags_sync, tier_ladder
from .engine.locks import job_writes_lock
from .engine.refresh import stale_months_mark, usage_mark_stale, usage_refresh
from .models import STANDARD_PLAN_NAME, Job, PricingPlan, StaleMonth
from .months import date_from_db, month_of

OrgMonth = tuple[int, dt.date]


class InvalidAllowance(DomainError):
    """A free-job allowance that is not a whole number of jobs ≥ 0."""

    def __init__(self, allowance: object) -> None:
        super().__init__(f"The free-job allowance must be 0 or more (got {allowance}).", field="allowance")


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


def _upsert_sql(*, arrays: bool = False) -> str:
    """The upsert of one job (``%s`` per column), or with ``arrays`` (PostgreSQL) of any number:
    one array per column, unnested in order, so one statement of 15 parameters writes a batch."""
    table = connection.ops.quote_name(Job._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(column) for column in _INSERT_COLUMNS)
    if arrays:
        fields = {field.column: field for field in Job._meta.concrete_fields}
        unnested = ", ".join(f"%s::{fields[column].db_type(connection)}[]" for column in _INSERT_COLUMNS)
        names = ", ".join(f"c{index}" for index in range(len(_INSERT_COLUMNS)))
        source = f"SELECT {names} FROM unnest({unnested}) WITH ORDINALITY AS t({names}, n) ORDER BY n"  # noqa: S608
    else:
        source = "VALUES (" + ", ".join(["%s"] * len(_INSERT_COLUMNS)) + ")"
    updates = ", ".join(
        f"{connection.ops.quote_name(column)} = excluded.{connection.ops.quote_name(column)}"
        for column in _UPDATE_COLUMNS
    )
    # Only identifiers from the model are interpolated; values go through placeholders.
    statement = f"INSERT INTO {table} ({columns}) {source} "  # noqa: S608
    return statement + f"ON CONFLICT (organisation_id, external_id) DO UPDATE SET {updates}"


def jobs_upsert(
    *, jobs: Iterable[JobInput], stored_months: Mapping[tuple[int, str], dt.date] | None = None
) -> UpsertResult:
    """Insert or update jobs by (organisation, external_id), in order, and mark their months stale.

    A job keeps its insertion position when updated; within one call the last version of a
    duplicated job wins. The caller resolves the marks (``usage_refresh``) when its batch is done.
    One prepared statement run for every row on SQLite, one statement of arrays on PostgreSQL:
    several times faster than the ORM's ``bulk_create`` here.

    ``stored_months``: a caller that already holds the writers' lock of these organisations in its
    transaction and has read which of the jobs exist (key -> stored month) passes that, and the
    lock, the read and a savepoint are not repeated.
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
    with transaction.atomic(savepoint=stored_months is None):
        if stored_months is None:
            job_writes_lock(organisation_ids={job.organisation_id for job in latest.values()})
            # One query finds the jobs that exist already, so their previous months are refreshed
            # too when a job moves. It filters on external_id alone (its own index) and matches the
            # pairs here: IN lists on both columns of the unique index make SQLite probe every
            # combination.
            existing = Job.objects.filter(external_id__in={key[1] for key in latest})
            stored_months = {
                (organisation_id, external_id): date_from_db(month)
                for organisation_id, external_id, month in existing.values_list(
                    "organisation_id", "external_id", "month"
                )
            }
        for key, month in stored_months.items():
            if key in latest:
                result.touched.add((key[0], month))
                result.updated += 1
        if connection.vendor == "postgresql":
            # One statement for the batch (executemany sends one per row, pipelined, but still
            # most of the time of an ingested batch of 1,000), prepared: its text is fixed.
            with prepared_cursor() as cursor:
                cursor.execute(_upsert_sql(arrays=True), [list(column) for column in zip(*rows, strict=True)])
        else:
            with connection.cursor() as cursor:
                cursor.executemany(_upsert_sql(), rows)
        result.created = len(latest) - result.updated
        stale_months_mark(result.touched)
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


def jobs_upsert_staged(
    *, table: str, lines: tuple[int, int], organisation_ids: Iterable[int], repeats: bool = True
) -> UpsertResult:
    """Upsert the jobs staged in ``table`` (see ``STAGED_COLUMNS``) on lines ``lines[0]..lines[1]``.

    The same rules as ``jobs_upsert``, applied by the database in one statement: a job keyed
    more than once gets the values of its last line and the position of its first. A caller
    that knows no job repeats within the lines passes ``repeats=False`` and saves the sorting
    that rule needs. ``organisation_ids`` are the organisations of the staged lines (their job
    writes are serialised). The months touched are marked stale in the same transaction; the
    caller resolves them when done.
    """
    q = connection.ops.quote_name
    job_table = q(Job._meta.db_table)
    staged = q(table)
    where = "s.line BETWEEN %s AND %s"
    params = list(lines)
    result = UpsertResult()
    with transaction.atomic():
        job_writes_lock(organisation_ids=organisation_ids)
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
        stale_months_mark(result.touched)
    return result


def organisation_free_allowance_set(*, organisation: Organisation, allowance: int) -> Organisation:
    """Change the free-job allowance; only the months whose free jobs change are recomputed."""
    if isinstance(allowance, bool) or not isinstance(allowance, int) or allowance < 0:
        raise InvalidAllowance(allowance)
    with transaction.atomic():
        Organisation.objects.filter(pk=organisation.pk).update(free_job_allowance=allowance)
        organisation.free_job_allowance = allowance
        usage_version_bump(organisation_ids=[organisation.pk])
        months, _ = free_flags_sync(organisation_id=organisation.pk, allowance=allowance)
        if months:
            usage_mark_stale(organisation_id=organisation.pk, months=months)
    usage_refresh(organisation_id=organisation.pk)
    return organisation


def organisation_plan_set(*, organisation: Organisation, plan) -> Organisation:
    """Move an organisation to another plan (None: standard); re-tiers its jobs if the ranks differ.

    Prices and discounts are applied when usage is read, so a plan whose tier ranks are the same
    needs no recompute at all. The comparison is with the plan stored now, whatever the instance
    passed in already carries.
    """
    with transaction.atomic():
        locked = Organisation.objects.select_for_update(no_key=True)
        stored_plan_id = locked.values_list("plan_id", flat=True).get(pk=organisation.pk)
        organisation.plan = plan
        Organisation.objects.filter(pk=organisation.pk).update(plan=plan)
        usage_version_bump(organisation_ids=[organisation.pk])
        if tier_ladder(plan_id=plan.pk if plan else None) != tier_ladder(plan_id=stored_plan_id):
            usage_mark_stale(organisation_id=organisation.pk, months=None)
    usage_refresh(organisation_id=organisation.pk)
    return organisation


def _organisations_priced_by(plan_id: int):
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
        job_writes_lock(organisation_ids=sorted({organisation_id for organisation_id, _ in touched}))
        job.save()
        stale_months_mark(touched)
    for organisation_id in sorted({organisation_id for organisation_id, _ in touched}):
        usage_refresh(organisation_id=organisation_id)
    return job


def job_delete(*, job: Job) -> None:
    """Delete a job and refresh the usage of its month."""
    organisation_id, month = job.organisation_id, job.month
    with transaction.atomic():
        job_writes_lock(organisation_ids=[organisation_id])
        job.delete()
        usage_mark_stale(organisation_id=organisation_id, months=[month])
    usage_refresh(organisation_id=organisation_id)
