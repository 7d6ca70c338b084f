"""Job ingestion: the job platform's batches of jobs (``POST /api/v1/ingest/jobs``), judged by
``usage.validation`` exactly as ``import_jobs`` judges a file's lines, then written by
``usage.services.jobs_upsert``.

A batch is all or nothing on the server's side: its valid items are written in one transaction
(in array order), its invalid ones never. Retrying a batch is always safe: a job that already
holds every value of its item is ``unchanged`` and nothing is written for it.
"""

import datetime as dt
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import Organisation
from portal.db import prepared_cursor

from .engine.locks import job_writes_lock
from .engine.refresh import usage_refresh, usage_refresh_organisations
from .models import Job
from .months import month_of
from .plans import plan_for_organisation
from .services import JobInput, job_delete, jobs_upsert
from .validation import FieldError, OrganisationDirectory, validate_job

logger = logging.getLogger("usage.ingesting")

MAX_ITEMS = 1_000
# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back as a
# whole, so running it again is safe.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 3

CREATED, UPDATED, UNCHANGED, REJECTED = "created", "updated", "unchanged", "rejected"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item: its position in the request, its external id (as given, when it
    is a string that can be shown; else None), its status, and for a rejected item every
    problem found."""

    index: int
    external_id: str | None
    status: str
    errors: tuple[FieldError, ...] = ()


@dataclass
class IngestReport:
    """What a batch did, one result per item in request order, and the counts of each status."""

    results: list[ItemResult] = field(default_factory=list)
    written: tuple[int, ...] = ()  # the organisations whose jobs were written (their usage is stale)

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)


def _shown_external_id(record: object) -> str | None:
    value = record.get("external_id") if isinstance(record, dict) else None
    if not isinstance(value, str):
        return None
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate cannot be written as UTF-8 JSON
        return None
    return value


def _is_retryable(error: OperationalError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES


def _with_retry(work: Callable[[], _T]) -> _T:
    """Run ``work`` (one whole transaction), again when PostgreSQL aborted it for a deadlock or
    a serialization failure, at most ``WRITE_ATTEMPTS`` times."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return work()
        except OperationalError as error:
            if attempt == WRITE_ATTEMPTS or not _is_retryable(error):
                raise
            logger.warning("ingestion write aborted by the database (%s); attempt %d", error, attempt + 1)
    raise AssertionError("unreachable")


_COMPARED = tuple(name for name in JobInput._fields)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _stored_inputs(keys: Collection[tuple[int, str]]) -> dict[tuple[int, str], JobInput]:
    """The stored values of these jobs, as ``JobInput``s (``created_at`` in UTC), keyed by
    (organisation, external id)."""
    if connection.vendor == "postgresql":
        return _stored_inputs_postgresql(keys)
    # SQLite: external_id alone (its own index), the pairs matched here; IN lists on both columns
    # of the unique index make SQLite probe every combination.
    stored = {}
    external_ids = {external_id for _, external_id in keys}
    for values in Job.objects.filter(external_id__in=external_ids).values_list(*_COMPARED):
        job = JobInput(*values)
        if (job.organisation_id, job.external_id) in keys:
            stored[(job.organisation_id, job.external_id)] = job
    return stored


def _stored_inputs_postgresql(keys: Collection[tuple[int, str]]) -> dict[tuple[int, str], JobInput]:
    """PostgreSQL: one statement joining the (organisation, external id) pairs, passed as two
    arrays, to the unique index, so a batch costs the same however many other organisations use
    the same external ids. ``created_at`` travels as microseconds since 1970: Django loads a
    ``timestamptz`` in Python, which took a third of the time of the read of a 1,000-item batch."""
    columns = ", ".join(
        "(EXTRACT(EPOCH FROM j.created_at) * 1000000)::int8" if name == "created_at" else f"j.{name}"
        for name in _COMPARED
    )
    organisation_ids, external_ids = zip(*keys, strict=True) if keys else ((), ())
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {Job._meta.db_table} j "  # noqa: S608 (constant names; the keys are parameters)
            "JOIN unnest(%s::int8[], %s::text[]) AS k(organisation_id, external_id) "
            "ON j.organisation_id = k.organisation_id AND j.external_id = k.external_id",
            [list(organisation_ids), list(external_ids)],
        )
        rows = cursor.fetchall()
    created_at = _COMPARED.index("created_at")
    stored = {}
    for values in rows:
        job = JobInput(*values)
        stored[(job.organisation_id, job.external_id)] = job._replace(
            created_at=_EPOCH + values[created_at] * _MICROSECOND
        )
    return stored


def _same(stored: JobInput | None, item: JobInput) -> bool:
    return stored is not None and stored == item


def _write(valid: list[tuple[int, JobInput]]) -> tuple[dict[int, str], set[int]]:
    """One transaction: judge each valid item against the stored jobs (under the writers' lock,
    so nobody changes them in between) and upsert those that change something. Returns each
    item's status by index, and the organisations written."""
    statuses: dict[int, str] = {}
    with transaction.atomic():
        organisation_ids = sorted({job.organisation_id for _, job in valid})
        job_writes_lock(organisation_ids=organisation_ids)
        state: dict[tuple[int, str], JobInput | None] = dict.fromkeys(
            (job.organisation_id, job.external_id) for _, job in valid
        )
        stored = _stored_inputs(state.keys())
        state.update(stored)
        # Each item is judged against the job as the items before it left it (array order).
        for index, job in valid:
            key = (job.organisation_id, job.external_id)
            current = state[key]
            statuses[index] = UNCHANGED if _same(current, job) else (UPDATED if current else CREATED)
            state[key] = job
        # Written: every job whose final values differ from what is stored, in the order of its
        # first item (jobs_upsert keeps that position for the last item's values).
        changed = [
            job
            for _, job in valid
            if not _same(
                stored.get((job.organisation_id, job.external_id)),
                state[(job.organisation_id, job.external_id)],
            )
        ]
        if changed:
            # This transaction holds the lock and has read the stored jobs: no second read.
            stored_months = {key: month_of(job.created_at) for key, job in stored.items()}
            jobs_upsert(jobs=changed, stored_months=stored_months)
    return statuses, {job.organisation_id for job in changed}


def ingested_usage_refresh(*, organisation_ids: Collection[int]) -> None:
    """Resolve the stale marks an ingestion left (detecting usage events on the way). Never
    raises: the jobs are committed, and every read resolves the marks that remain."""
    try:
        _with_retry(lambda: usage_refresh_organisations(organisation_ids=sorted(organisation_ids)))
    except Exception:
        logger.exception("usage refresh after ingestion failed; the next read will refresh")


def jobs_ingest(
    *,
    records: Sequence[object],
    scope: Collection[int] | None,
    now: dt.datetime | None = None,
    refresh: bool = True,
) -> IngestReport:
    """Judge and write one batch of decoded items (``import_jobs`` line objects).

    ``scope``: the organisations the caller may write (None: all); any other is rejected as an
    unknown organisation. Valid items are written in one transaction in array order; an item
    whose job already holds every value is ``unchanged`` and writes nothing. The same job twice:
    each item is judged against the job as the earlier items leave it (so ``created`` then
    ``updated``, or ``unchanged``), the job gets the last item's values and the first one's
    position. With ``refresh``, usage of the organisations written (``report.written``) is
    refreshed before returning; without, the caller does it (the API, once its answer is sent). If
    that refresh fails, the marks stay and the next read resolves them. Raises on a database
    failure, with nothing written.
    """
    now = now or timezone.now()
    directory = OrganisationDirectory(scope=scope)
    directory.preload(record.get("org_id") for record in records if isinstance(record, dict))
    outcomes = [validate_job(record, directory=directory, now=now) for record in records]
    valid = [(index, outcome) for index, outcome in enumerate(outcomes) if isinstance(outcome, JobInput)]
    statuses, written = _with_retry(lambda: _write(valid)) if valid else ({}, set())
    if written and refresh:
        ingested_usage_refresh(organisation_ids=written)
    report = IngestReport(written=tuple(sorted(written)))
    for index, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
        if isinstance(outcome, JobInput):
            report.results.append(ItemResult(index, outcome.external_id, statuses[index]))
        else:
            report.results.append(ItemResult(index, _shown_external_id(record), REJECTED, tuple(outcome)))
    return report


@dataclass(frozen=True)
class IngestedJob:
    """A stored job as the ingestion API shows it: its values, its month, and its tier's name."""

    job: Job
    org_id: str
    api_key_name: str | None
    tier_name: str


def _job_in_scope(*, org_id: str, external_id: str, scope: Collection[int] | None) -> Job | None:
    if "\x00" in org_id or "\x00" in external_id:  # no stored job holds NUL (the validator refuses it)
        return None
    jobs = Job.objects.select_related("organisation", "api_key").filter(
        organisation__org_id=org_id, external_id=external_id
    )
    if scope is not None:
        jobs = jobs.filter(organisation_id__in=scope)
    return jobs.first()


def ingested_job_get(*, org_id: str, external_id: str, scope: Collection[int] | None) -> IngestedJob | None:
    """The stored job ``external_id`` of organisation ``org_id``, its derived columns fresh, or
    None when there is none or the organisation is outside ``scope`` (None: all)."""
    if "\x00" in org_id:
        return None
    organisation_id = Organisation.objects.filter(org_id=org_id).values_list("pk", flat=True).first()
    if organisation_id is None or (scope is not None and organisation_id not in scope):
        return None
    usage_refresh(organisation_id=organisation_id)
    job = _job_in_scope(org_id=org_id, external_id=external_id, scope=scope)
    if job is None:
        return None
    tiers = plan_for_organisation(job.organisation).tiers
    return IngestedJob(
        job=job,
        org_id=job.organisation.org_id,
        api_key_name=job.api_key.name if job.api_key_id else None,
        tier_name=tiers[job.tier - 1].name,
    )


def ingested_job_delete(*, org_id: str, external_id: str, scope: Collection[int] | None) -> bool:
    """Delete a job recorded by mistake (usage refreshed); False when there is none or it is
    outside ``scope``."""
    job = _job_in_scope(org_id=org_id, external_id=external_id, scope=scope)
    if job is None:
        return False
    job_delete(job=job)
    return True
