"""A deliberately plain, job-by-job reading of SPEC "Usage semantics", to check the engine against."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal


def reference_usage(*, jobs, per_job_fee, transcription_rate, note_rate, tiers, allowance):
    """``jobs``: dicts in insertion order with created_at, key, transcription_tokens, note_tokens.

    ``tiers``: list of (name, first_rank, discount). Returns {(month, key): totals} where totals
    has jobs, base, final and tiers (name -> jobs); key None is a web job.
    """
    order = sorted(range(len(jobs)), key=lambda index: (jobs[index]["created_at"], index))
    free = set(order[:allowance])
    rank_in_month: dict[dt.date, int] = defaultdict(int)
    result = defaultdict(
        lambda: {"jobs": 0, "base": Decimal(0), "final": Decimal(0), "tiers": defaultdict(int)}
    )
    for index in order:
        job = jobs[index]
        month = job["created_at"].date().replace(day=1)
        rank_in_month[month] += 1
        rank = rank_in_month[month]
        name, _, discount = [tier for tier in tiers if tier[1] <= rank][-1]
        base = (
            per_job_fee
            + Decimal(job["transcription_tokens"]) / 1000 * transcription_rate
            + Decimal(job["note_tokens"]) / 1000 * note_rate
        )
        final = Decimal(0) if index in free else base * (1 - discount / Decimal(100))
        bucket = result[(month, job["key"])]
        bucket["jobs"] += 1
        bucket["base"] += base
        bucket["final"] += final
        bucket["tiers"][name] += 1
    return result
