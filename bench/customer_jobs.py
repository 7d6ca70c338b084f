"""The customer drill-down at scale (issue 15): the jobs API's last page, the jobs CSV's memory,
and the usage page's daily view.

- ``jobs_api``: ``GET /api/v1/jobs?limit=100`` at the last page of the 200,000-job organisation's
  largest month ÷ its first page, through the real view (Django test client, Bearer key, DEBUG
  off), the two taking turns. Keyset pagination keeps the last page as cheap as the first.
- ``jobs_csv_memory``: the jobs CSV of that month streamed by a gunicorn worker to a client that
  discards it; the figure is the growth of the worker's peak RSS (``VmHWM`` in ``/proc``) from
  before the download (after a warm-up download of the 1,000-job organisation's CSV) to after it.
- ``daily_page``: the usage page with the daily view of that month for the big organisation ÷ the
  same page (same months) for the 1,000-job organisation, logged in, taking turns.

Each creates its own API key or user and removes it afterwards, so the data set is left as found.
"""

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .common import Context, Figure, interleaved, median, spread

ROOT = Path(__file__).resolve().parent.parent
API_LIMIT = 100
RATIO_BUDGET = 1.5
CSV_BUDGET_MB = 50.0
HOST = "localhost"  # in the default ALLOWED_HOSTS (the test client's "testserver" is not)


def largest_month(organisation_pk: int) -> tuple[str, int]:
    """The organisation's month with the most jobs ("YYYY-MM") and its job count."""
    from django.db.models import Sum

    from usage.models import MonthlyUsage

    row = (
        MonthlyUsage.objects.filter(organisation_id=organisation_pk)
        .values("month")
        .annotate(jobs=Sum("jobs"))
        .order_by("-jobs", "month")
        .first()
    )
    return f"{row['month']:%Y-%m}", row["jobs"]


def _rounds(context: Context, full: int) -> int:
    return max(10, full // 3) if context.quick else full


@contextmanager
def temporary_owner(*organisation_pks: int) -> Iterator[object]:
    """A user who owns the given organisations for the length of the block, removed afterwards."""
    from accounts.models import Membership, Organisation, User
    from accounts.services import membership_add

    user = User.objects.create_user(f"bench-owner-{time.time_ns()}", "bench-owner@example.test", None)
    try:
        for organisation in Organisation.objects.filter(pk__in=organisation_pks):
            membership_add(organisation=organisation, user=user, role=Membership.Role.OWNER)
        yield user
    finally:
        from django.contrib.sessions.models import Session

        user_pk = str(user.pk)
        for session in Session.objects.all().iterator():
            if session.get_decoded().get("_auth_user_id") == user_pk:
                session.delete()
        user.delete()


# --- GET /api/v1/jobs: last page ÷ first page -----------------------------------------------------


def run_jobs_api(context: Context) -> list[Figure]:
    from django.test import Client, override_settings
    from django.urls import reverse

    from accounts.models import Organisation
    from accounts.services import api_key_create

    name = f"GET /api/v1/jobs limit={API_LIMIT}: last ÷ first page (median)"
    big = context.dataset.big
    month, month_jobs = largest_month(big.pk)
    created = api_key_create(
        organisation=Organisation.objects.get(pk=big.pk), name=f"bench jobs api {time.time_ns()}"
    )
    client = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {created.plaintext}")
    url = reverse("api-jobs")
    first = {"month": month, "limit": str(API_LIMIT)}
    try:
        # The benchmark's own key makes thousands of calls in a minute: lift the per-key limit.
        with override_settings(API_THROTTLE_RATE="1000000000/min"):
            # Walk the cursors once, untimed, to the last page. A cursor holds the position, not
            # the limit: a first step of the odd remainder makes the last page a full one.
            step = month_jobs % API_LIMIT or API_LIMIT
            last, pages, jobs_seen = {**first, "limit": str(step)}, 0, 0
            while True:
                body = _get_json(client, url, last)
                pages += 1
                jobs_seen += len(body["data"])
                if body["next_cursor"] is None:
                    break
                last = {**first, "cursor": body["next_cursor"]}
            if jobs_seen != month_jobs or len(body["data"]) != API_LIMIT:
                raise RuntimeError(f"the pages hold {jobs_seen} jobs, the month {month_jobs}")
            samples = interleaved(
                {"first": lambda: _get_json(client, url, first), "last": lambda: _get_json(client, url, last)},
                repeat=_rounds(context, 60),
                warmup=3,
            )
    finally:
        created.api_key.delete()  # with its call counts (cascade)
    ratio = median(samples["last"]) / median(samples["first"])
    return [
        Figure(
            name,
            round(ratio, 2),
            "×",
            f"≤ {RATIO_BUDGET}×",
            ratio <= RATIO_BUDGET,
            note=(
                f"{big.org_id} {month}: {month_jobs:,} jobs, last page = jobs {month_jobs - API_LIMIT + 1:,}–"
                f"{month_jobs:,} ({pages:,} pages); "
                f"first {median(samples['first']) * 1000:.1f} ms, last {median(samples['last']) * 1000:.1f} ms; "
                f"{spread(samples['last'])}"
            ),
            group="customer jobs",
        )
    ]


def _get_json(client, url: str, params: dict) -> dict:
    response = client.get(url, params)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {params} answered {response.status_code}: {response.content[:200]!r}")
    return response.json()


# --- Jobs CSV: the serving process's peak memory -------------------------------------------------


def _proc_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE).group(1))


def _only_worker(master: int) -> int:
    """The pid of the single worker of the gunicorn ``master`` (it forks it after binding)."""
    from bench.api_throughput import child_pids

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = child_pids(master)
        if len(workers) == 1:
            return workers[0]
        time.sleep(0.2)
    raise RuntimeError(f"expected one gunicorn worker of {master}, found {child_pids(master)}")


def _download(url: str, session_cookie: str) -> tuple[int, int]:
    """GET ``url`` with the session, reading and discarding the body; (bytes, lines)."""
    request = urllib.request.Request(url, headers={"Cookie": session_cookie})
    size = lines = 0
    with urllib.request.urlopen(request, timeout=600) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}")
        while chunk := response.read(1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return size, lines


def run_jobs_csv_memory(context: Context) -> list[Figure]:
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    from bench.api_throughput import start_gunicorn

    name = "jobs CSV of the largest month: peak RSS growth of the serving worker"
    budget = f"< {CSV_BUDGET_MB:.0f} MB"
    if not Path("/proc/self/status").exists():
        return [Figure(name, None, budget=budget, note="n/a: needs /proc (Linux)")]
    big, small = context.dataset.big, context.dataset.small
    month, month_jobs = largest_month(big.pk)
    small_month, _ = largest_month(small.pk)
    with temporary_owner(big.pk, small.pk) as user:
        client = Client()
        client.force_login(user)
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        # One sync worker, so the process that streams the CSV is the one measured.
        environment = context.subprocess_env(LOG_LEVEL="ERROR", GUNICORN_CMD_ARGS="--timeout=900")
        process, base = start_gunicorn(context, "portal.wsgi:application", environment, workers=1)
        try:
            worker = _only_worker(process.pid)
            # Warm-up: the same view and code path on 1,000 jobs (imports, connection, caches).
            _download(base + reverse("jobs-csv", args=[small.org_id]) + f"?month={small_month}", cookie)
            rss_before = _proc_kib(worker, "VmRSS")
            peak_before = _proc_kib(worker, "VmHWM")
            started = time.perf_counter()
            size, lines = _download(base + reverse("jobs-csv", args=[big.org_id]) + f"?month={month}", cookie)
            seconds = time.perf_counter() - started
            peak_after = _proc_kib(worker, "VmHWM")
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if lines != month_jobs + 1:
        raise RuntimeError(f"the CSV has {lines} lines for {month_jobs} jobs")
    growth_mb = (peak_after - peak_before) / 1024
    return [
        Figure(
            name,
            round(growth_mb, 1),
            "MB",
            budget,
            growth_mb < CSV_BUDGET_MB,
            note=(
                f"{big.org_id} {month}: {month_jobs:,} jobs, {size / 1e6:.1f} MB of CSV in {seconds:.1f} s; "
                f"worker RSS {rss_before / 1024:.0f} MB before, peak {peak_before / 1024:.0f} → "
                f"{peak_after / 1024:.0f} MB (gunicorn, 1 sync worker)"
            ),
            group="customer jobs",
        )
    ]


# --- Usage page with the daily view: big ÷ small --------------------------------------------------


def run_daily_page(context: Context) -> list[Figure]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from usage.months import add_months, parse_month

    name = "usage page with the daily view, largest month: big ÷ 1,000-job org (median)"
    big, small = context.dataset.big, context.dataset.small
    month, month_jobs = largest_month(big.pk)
    start = f"{add_months(parse_month(month), -11):%Y-%m}"
    query = {"start": start, "end": month, "day_month": month}
    urls = {side: reverse("usage-page", args=[org.org_id]) for side, org in (("big", big), ("small", small))}
    with temporary_owner(big.pk, small.pk) as user:
        client = Client(HTTP_HOST=HOST)
        client.force_login(user)
        counts = {}
        for side, url in urls.items():
            with CaptureQueriesContext(connection) as queries:
                page = _get_page(client, url, query)
            counts[side] = len(queries)
            if f'data-day="{month}-01"' not in page:
                raise RuntimeError(f"the {side} page has no daily table for {month}")
        samples = interleaved(
            {side: (lambda url=url: _get_page(client, url, query)) for side, url in urls.items()},
            repeat=_rounds(context, 60),
            warmup=3,
        )
    ratio = median(samples["big"]) / median(samples["small"])
    return [
        Figure(
            name,
            round(ratio, 2),
            "×",
            f"≤ {RATIO_BUDGET}×",
            ratio <= RATIO_BUDGET,
            note=(
                f"{month} ({month_jobs:,} jobs vs {small.org_id}), 12 months shown; "
                f"big {median(samples['big']) * 1000:.1f} ms, small {median(samples['small']) * 1000:.1f} ms; "
                f"{counts['big']} vs {counts['small']} queries; {spread(samples['big'])}"
            ),
            group="customer jobs",
        )
    ]


def _get_page(client, url: str, query: dict) -> str:
    response = client.get(url, query)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {query} answered {response.status_code}")
    return response.content.decode()
