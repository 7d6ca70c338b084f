"""Reads of single jobs with their exact money: the jobs API, the jobs page and its CSV.

A job's money comes from ``usage.pricing`` with the stored derived columns (tier, free flag),
the same rules ``usage.selectors.usage_report`` applies to the aggregates, and is never rounded
here: the jobs of a month add up exactly to that month's unrounded figures. Pages are read by
keyset (``(created_at, id)`` after the last one shown, on the index ``job_rank_idx``), never by
offset, so every page costs the same whatever its depth.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet

from accounts.models import ApiKey, Organisation

from . import pricing
from .engine.refresh import usage_refresh
from .job_query import JobPosition, JobQuery
from .models import Job
from .plans import plan_for_organisation

_FIELDS = (
    "id",
    "external_id",
    "created_at",
    "api_key__name",
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
STREAM_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class PricedJob:
    """One job as listed: its facts, its tier name and its exact (unrounded) money."""

    id: int
    external_id: str
    created_at: dt.datetime
    api_key: str | None
    language: str
    audio_duration_seconds: int
    status: str
    has_transcript: bool
    has_lrc: bool
    transcription_tokens: int
    note_tokens: int
    tier: str
    is_free: bool
    base_cost: Decimal
    final_cost: Decimal

    @property
    def savings(self) -> Decimal:
        return self.base_cost - self.final_cost

    @property
    def position(self) -> JobPosition:
        return JobPosition(created_at=self.created_at, id=self.id)


@dataclass(frozen=True)
class JobPage:
    """Up to ``limit`` jobs in rank order; ``next_after`` is where the next page starts, if any."""

    jobs: list[PricedJob]
    next_after: JobPosition | None


def _priced(plan: pricing.Plan, row: dict) -> PricedJob:
    tier = min(row["tier"], len(plan.tiers))  # as usage_report: a plan may have lost tiers
    base = pricing.base_cost(
        plan, jobs=1, transcription_tokens=row["transcription_tokens"], note_tokens=row["note_tokens"]
    )
    return PricedJob(
        id=row["id"],
        external_id=row["external_id"],
        created_at=row["created_at"],
        api_key=row["api_key__name"],
        language=row["language"],
        audio_duration_seconds=row["audio_duration_seconds"],
        status=row["status"],
        has_transcript=row["has_transcript"],
        has_lrc=row["has_lrc"],
        transcription_tokens=row["transcription_tokens"],
        note_tokens=row["note_tokens"],
        tier=plan.tier_at(tier).name,
        is_free=row["is_free"],
        base_cost=base,
        final_cost=pricing.final_cost(plan, base=base, tier=tier, is_free=row["is_free"]),
    )


def _jobs(query: JobQuery, after: JobPosition | None) -> QuerySet:
    jobs = Job.objects.filter(organisation_id=query.organisation_id, month=query.month)
    filters = query.filters
    if filters.api_key == "":
        jobs = jobs.filter(api_key__isnull=True)
    elif filters.api_key is not None:
        jobs = jobs.filter(api_key__name=filters.api_key)
    if filters.status is not None:
        jobs = jobs.filter(status=filters.status)
    if filters.language is not None:
        jobs = jobs.filter(language=filters.language)
    if after is not None:
        # (created_at, id) > after, written so the created_at bound is an index range.
        jobs = jobs.filter(
            Q(created_at__gte=after.created_at) & (Q(created_at__gt=after.created_at) | Q(id__gt=after.id))
        )
    return jobs.order_by("created_at", "id").values(*_FIELDS)


def job_page(
    *, organisation: Organisation, query: JobQuery, after: JobPosition | None, limit: int
) -> JobPage:
    """The jobs of ``query`` after ``after`` (from the first when None), at most ``limit``.

    Resolves stale usage first (the derived tier and free flag must be current). Three queries
    whatever the page: the stale-mark check, the plan with its tiers, and the jobs (``limit`` + 1
    of them, to know whether another page follows).
    """
    if query.organisation_id != organisation.pk:
        raise ValueError("the query is of another organisation")
    usage_refresh(organisation_id=organisation.pk)
    plan = plan_for_organisation(organisation)
    rows = list(_jobs(query, after)[: limit + 1])
    jobs = [_priced(plan, row) for row in rows[:limit]]
    next_after = jobs[-1].position if len(rows) > limit else None
    return JobPage(jobs=jobs, next_after=next_after)


def job_stream(
    *, organisation: Organisation, query: JobQuery, chunk_size: int = STREAM_CHUNK
) -> Iterator[PricedJob]:
    """Every job of ``query`` in rank order, read ``chunk_size`` at a time by keyset.

    Usage is refreshed and the plan read now; the jobs are read as the iterator is consumed,
    one query per chunk, so memory stays bounded whatever the number of jobs.
    """
    if query.organisation_id != organisation.pk:
        raise ValueError("the query is of another organisation")
    usage_refresh(organisation_id=organisation.pk)
    plan = plan_for_organisation(organisation)

    def stream() -> Iterator[PricedJob]:
        after = None
        while True:
            count = 0
            for row in _jobs(query, after)[:chunk_size].iterator(chunk_size=chunk_size):
                job = _priced(plan, row)
                count += 1
                yield job
            if count < chunk_size:
                return
            after = job.position

    return stream()


def job_key_names(*, organisation: Organisation) -> list[str]:
    """Names of every key of ``organisation`` (revoked ones included), in order: one query."""
    return list(
        ApiKey.objects.filter(organisation=organisation).order_by("name").values_list("name", flat=True)
    )
