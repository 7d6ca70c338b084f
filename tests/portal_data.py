"""Realistic usage histories for the page, CSV and browser tests, written through the services.

Deterministic: the same arguments always give the same jobs, so tests can state exact figures.
API calls have no write service in this app (the REST layer counts them), so they are stored
directly as ``ApiCallCount`` rows, as that layer would.
"""

import datetime as dt
import itertools
from dataclasses import dataclass

from accounts.models import ApiKey, Organisation
from accounts.services import api_key_create
from usage.engine.refresh import usage_refresh
from usage.models import ApiCallCount
from usage.months import add_months, month_bounds
from usage.services import JobInput, jobs_upsert

LANGUAGES = ("English", "Hindi", "Spanish", "Tamil", "Bengali", "Japanese")
_ids = itertools.count(1)


@dataclass
class History:
    organisation: Organisation
    keys: list[ApiKey]
    months: list[dt.date]
    jobs: int


def build_usage_history(
    *,
    organisation: Organisation,
    key_names: list[str],
    last_month: dt.date,
    months: int,
    jobs_per_key_month: int,
    web_jobs_per_month: int = 0,
    growth: int = 0,
    calls_per_job: int = 0,
) -> History:
    """Create ``key_names`` (or reuse keys of that name) and jobs in each of ``months`` months up to
    ``last_month``: per key ``jobs_per_key_month`` (+ ``growth`` per month) and some web jobs.
    """
    existing = {api_key.name: api_key for api_key in ApiKey.objects.filter(organisation=organisation)}
    keys = [
        existing.get(name) or api_key_create(organisation=organisation, name=name).api_key
        for name in key_names
    ]
    month_list = [add_months(last_month, offset - months + 1) for offset in range(months)]
    jobs: list[JobInput] = []
    calls: list[ApiCallCount] = []
    for month_index, month in enumerate(month_list):
        start, end = month_bounds(month)
        end = min(end, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        span = (end - start).total_seconds()
        sources = [(api_key, jobs_per_key_month + growth * month_index) for api_key in keys]
        sources.append((None, web_jobs_per_month))
        for key_index, (api_key, count) in enumerate(sources):
            for job_index in range(count):
                serial = next(_ids)
                fraction = (job_index + 0.5) / max(count, 1)
                failed = serial % 23 == 0
                jobs.append(
                    JobInput(
                        organisation_id=organisation.pk,
                        api_key_id=api_key.pk if api_key else None,
                        external_id=f"hist-{organisation.org_id}-{serial}",
                        created_at=start + dt.timedelta(seconds=int(span * fraction * 0.9) + key_index),
                        language=LANGUAGES[(serial * 7 + key_index) % len(LANGUAGES) if serial % 3 else 0],
                        audio_duration_seconds=60 + (serial * 37) % 540,
                        status="failed" if failed else "completed",
                        has_transcript=not failed,
                        has_lrc=not failed and serial % 11 != 0,
                        transcription_tokens=800 + (serial * 131) % 4000,
                        note_tokens=(serial * 53) % 1500,
                    )
                )
            if api_key is not None and calls_per_job and count:
                calls.append(
                    ApiCallCount(
                        api_key=api_key, organisation=organisation, month=month, calls=count * calls_per_job
                    )
                )
    jobs_upsert(jobs=jobs)
    usage_refresh(organisation_id=organisation.pk)
    ApiCallCount.objects.bulk_create(calls)
    return History(organisation=organisation, keys=keys, months=month_list, jobs=len(jobs))
