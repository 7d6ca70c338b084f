"""Server render time of the customer usage page for 24 months and 20 API keys.

    .venv/bin/python bench/page_render.py [--renders 200] [--jobs-per-key-month 10]

Builds the data through the services (an organisation with 20 keys, jobs on every key and on the
web in each of 24 months, API call counts), logs a member in, and times full requests through the
Django test client (middleware, session, access check, ``usage_report``, template) with DEBUG off.
Prints the median (the budget is 50 ms), the 95th percentile and the query count, and the same
for the CSV export.

It uses a throwaway database: a temporary SQLite file, or, when ``BENCH_DATABASE_URL`` is set, a
``test_`` database created next to it and dropped afterwards.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
if os.environ.get("BENCH_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
else:
    os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

BUDGET_MS = 50.0
MONTHS = 24
KEYS = 20
LANGUAGES = ("English", "Hindi", "Spanish", "Tamil", "Bengali", "Japanese")


def build(*, jobs_per_key_month: int, web_jobs_per_month: int) -> tuple[object, int]:
    """The organisation, its member and a history of MONTHS months on KEYS keys; returns (user, jobs)."""
    from accounts.models import Membership, User
    from accounts.services import api_key_create, membership_add, organisation_create
    from usage.engine.refresh import usage_refresh
    from usage.models import ApiCallCount
    from usage.months import add_months, current_month, month_bounds
    from usage.services import JobInput, jobs_upsert, organisation_free_allowance_set

    organisation = organisation_create(name="Bench Corp", org_id="org_bench")
    user = User.objects.create_user("bench", "bench@example.test", "bench-pass-123")
    membership_add(organisation=organisation, user=user, role=Membership.Role.OWNER)
    keys = [
        api_key_create(organisation=organisation, name=f"key-{index:02d}").api_key for index in range(KEYS)
    ]
    now = dt.datetime.now(dt.UTC)
    jobs, calls, serial = [], [], 0
    for offset in range(MONTHS):
        month = add_months(current_month(), offset - MONTHS + 1)
        start, end = month_bounds(month)
        end = min(end, now - dt.timedelta(minutes=1))
        span = (end - start).total_seconds()
        for api_key in [*keys, None]:
            count = jobs_per_key_month if api_key else web_jobs_per_month
            for index in range(count):
                serial += 1
                jobs.append(
                    JobInput(
                        organisation_id=organisation.pk,
                        api_key_id=api_key.pk if api_key else None,
                        external_id=f"bench-{serial}",
                        created_at=start + dt.timedelta(seconds=span * (index + 0.5) / count),
                        language=LANGUAGES[serial % len(LANGUAGES)],
                        audio_duration_seconds=60 + serial % 500,
                        status="completed" if serial % 17 else "failed",
                        has_transcript=bool(serial % 17),
                        has_lrc=bool(serial % 17),
                        transcription_tokens=1000 + serial % 3000,
                        note_tokens=serial % 1200,
                    )
                )
            if api_key:
                calls.append(
                    ApiCallCount(api_key=api_key, organisation=organisation, month=month, calls=count * 3)
                )
    jobs_upsert(jobs=jobs)
    usage_refresh(organisation_id=organisation.pk)
    ApiCallCount.objects.bulk_create(calls)
    organisation_free_allowance_set(organisation=organisation, allowance=100)
    return user, len(jobs)


def measure(client: Client, url: str, query: dict, *, renders: int) -> tuple[list[float], int]:
    """Milliseconds of ``renders`` GETs after a warm-up, and the queries one GET makes."""
    for _ in range(10):
        assert client.get(url, query).status_code == 200
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        client.get(url, query)
    # Counted now: every request start clears the connection's query log.
    query_count = len(queries)
    timings = []
    for _ in range(renders):
        started = time.perf_counter()
        response = client.get(url, query)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return timings, query_count


def report(label: str, timings: list[float], queries: int) -> float:
    median = statistics.median(timings)
    p95 = statistics.quantiles(timings, n=20)[-1]
    print(f"{label}: median {median:.1f} ms, p95 {p95:.1f} ms, min {min(timings):.1f} ms, {queries} queries")
    return median


def profile(client: Client, url: str, query: dict) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(lambda: [client.get(url, query) for _ in range(50)])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--jobs-per-key-month", type=int, default=10)
    parser.add_argument("--web-jobs-per-month", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of 50 page renders")
    args = parser.parse_args()

    setup_test_environment()
    settings.DEBUG = False
    with tempfile.TemporaryDirectory() as scratch:
        if connection.vendor == "sqlite":
            connection.settings_dict.setdefault("TEST", {})["NAME"] = str(Path(scratch) / "bench.sqlite3")
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            user, jobs = build(
                jobs_per_key_month=args.jobs_per_key_month, web_jobs_per_month=args.web_jobs_per_month
            )
            client = Client()
            client.force_login(user)
            from usage.months import add_months, current_month, format_month

            query = {
                "start": format_month(add_months(current_month(), 1 - MONTHS)),
                "end": format_month(current_month()),
            }
            print(
                f"{connection.vendor}: {MONTHS} months x {KEYS} keys, {jobs} jobs, "
                f"{args.renders} renders after 10 warm-ups (Django test client, DEBUG off)"
            )
            page_url = reverse("usage-page", args=["org_bench"])
            csv_url = reverse("usage-csv", args=["org_bench"])
            page_ms = report("usage page", *measure(client, page_url, query, renders=args.renders))
            report("usage CSV ", *measure(client, csv_url, query, renders=args.renders))
            if args.profile:
                profile(client, page_url, query)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    verdict = "within" if page_ms <= BUDGET_MS else "OVER"
    print(f"usage page median {page_ms:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")
    return 0 if page_ms <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
