"""The soak: ten minutes of mixed load on PostgreSQL under gunicorn, with imports running alongside.

Three load generators run at once for the whole soak:

- wrk (4 connections) rotating through ``GET /usage`` (12 months), ``GET /api/v1/usage`` and
  ``GET /api/v1/ping`` with a Bearer key of the data set's largest organisation;
- wrk (2 connections) on that organisation's usage page, with a logged-in member's session cookie;
- ``manage.py import_jobs`` in a loop: each run re-imports 2,000 jobs of the same organisation
  (the same external ids, a different duration each run; 5 s apart), so every run updates jobs, marks months
  stale and renews the cached ``/usage`` bodies while they are read.

It prints the requests served, the errors (non-2xx answers, socket errors and failed imports;
must be 0), p50/p99 of each load, and the resident memory (RSS) of the gunicorn master and of each
worker, after a warm-up and at the end: growth must be flat (< 10 % or < 20 MB per process).

Not in the default set (it takes ten minutes): ``make bench-pg BENCH_ARGS="--only soak"``.
``BENCH_SOAK_SECONDS`` shortens it (e.g. 60 while developing). The imported jobs, the member and
the key are removed at the end, and the organisation's usage refreshed, so the data set is left as
it was found.
"""

import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .api_throughput import DEFAULT_CACHE_URL, clear_cached_bodies, ensure_wrk, parse_wrk, start_gunicorn
from .common import Context, Figure, log

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECONDS = 600
WARMUP_SECONDS = 20
IMPORT_JOBS = 2_000
IMPORT_PAUSE_SECONDS = 5
# A steady load the two sync workers serve without queueing past wrk's timeout on two cores: the
# soak looks for errors and leaks over time, not for the highest throughput (see `--only api`).
API_CONNECTIONS = 4
PAGE_CONNECTIONS = 2
RSS_GROWTH_PERCENT = 10.0
RSS_GROWTH_MB = 20.0


def soak_seconds() -> int:
    return int(os.environ.get("BENCH_SOAK_SECONDS", DEFAULT_SECONDS))


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def gunicorn_workers(master: int) -> list[int]:
    return sorted(int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split())


def rotating_script(directory: Path, name: str, paths: list[str]) -> Path:
    """A wrk Lua script sending GETs to ``paths`` in turn, that prints how many answers had each
    status other than 200 at the end (wrk itself only counts them)."""
    script = directory / f"{name}.lua"
    listed = ", ".join(json.dumps(path) for path in paths)
    script.write_text(
        f"local paths = {{{listed}}}\n"
        "local index = 0\n"
        "local threads = {}\n"
        "function setup(thread) table.insert(threads, thread) end\n"
        "function init(args) statuses = {} end\n"
        "request = function()\n"
        "  index = index % #paths + 1\n"
        '  return wrk.format("GET", paths[index])\n'
        "end\n"
        "response = function(status, headers, body)\n"
        "  if status ~= 200 then statuses[status] = (statuses[status] or 0) + 1 end\n"
        "end\n"
        "function done(summary, latency, requests)\n"
        "  for _, thread in ipairs(threads) do\n"
        '    for status, count in pairs(thread:get("statuses")) do\n'
        '      io.write(string.format("status %d: %d\\n", status, count))\n'
        "    end\n"
        "  end\n"
        "end\n"
    )
    return script


def other_statuses(output: str) -> str:
    """The ``status N: count`` lines the script printed, joined."""
    return ", ".join(
        line.removeprefix("status ") for line in output.splitlines() if line.startswith("status ")
    )


def import_file(path: Path, *, org_id: str, month: str, run: int) -> None:
    """``IMPORT_JOBS`` jobs with fixed external ids; the duration changes with ``run``."""
    with path.open("w") as out:
        for index in range(IMPORT_JOBS):
            second = index % 3600
            created = f"{month}-28T{22 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
            out.write(
                json.dumps(
                    {
                        "org_id": org_id,
                        "external_id": f"soak-{index}",
                        "created_at": created,
                        "language": "Hindi",
                        "audio_duration_seconds": 30 + run % 7,
                        "status": "completed",
                        "has_transcript": True,
                        "has_lrc": True,
                        "transcription_tokens": 100,
                        "note_tokens": 50,
                    }
                )
                + "\n"
            )


class ImportLoop(threading.Thread):
    """``manage.py import_jobs`` again and again until told to stop."""

    def __init__(self, context: Context, environment: dict, folder: Path, *, org_id: str, month: str) -> None:
        super().__init__(daemon=True)
        self.context, self.environment, self.folder = context, environment, folder
        self.org_id, self.month = org_id, month
        self.stop = threading.Event()
        self.runs = self.failures = 0
        self.seconds: list[float] = []
        self.last_error = ""

    def run(self) -> None:
        while not self.stop.is_set():
            path = self.folder / f"soak-{self.runs % 2}.jsonl"
            import_file(path, org_id=self.org_id, month=self.month, run=self.runs)
            started = time.perf_counter()
            done = subprocess.run(
                [self.context.python, "manage.py", "import_jobs", str(path)],
                cwd=ROOT,
                env=self.environment,
                capture_output=True,
                text=True,
                check=False,
            )
            self.seconds.append(time.perf_counter() - started)
            self.runs += 1
            if done.returncode != 0:
                self.failures += 1
                self.last_error = (done.stderr or done.stdout).strip()[-300:]
            self.stop.wait(IMPORT_PAUSE_SECONDS)


def start_wrk(wrk: str, url: str, *, seconds: int, connections: int, header: str, script: Path | None):
    command = [
        wrk,
        "--threads=1",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        "--latency",
        "--header",
        header,
    ]
    if script is not None:
        command += ["--script", str(script)]
    return subprocess.Popen([*command, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def run(context: Context) -> list[Figure]:
    from accounts.models import Membership, Organisation, User
    from accounts.services import api_key_create, membership_add
    from usage.engine.refresh import usage_mark_stale, usage_refresh
    from usage.models import Job
    from usage.months import parse_month

    wrk = ensure_wrk()
    seconds = soak_seconds()
    dataset = context.dataset
    cache_url = os.environ.get("BENCH_CACHE_URL", DEFAULT_CACHE_URL)
    clear_cached_bodies(cache_url, dataset.big.pk)
    organisation = Organisation.objects.get(pk=dataset.big.pk)
    created = api_key_create(organisation=organisation, name=f"bench soak {time.time_ns()}")
    user = User.objects.create_user(f"soak-{time.time_ns()}", password=None)
    membership_add(organisation=organisation, user=user, role=Membership.Role.MEMBER)
    start_month, end_month = dataset.report_months
    environment = context.subprocess_env(
        CACHE_URL=cache_url, API_THROTTLE_RATE="1000000000/min", LOG_LEVEL="ERROR"
    )
    api_paths = [
        f"/usage?start_month={start_month}&end_month={end_month}",
        "/api/v1/usage",
        "/api/v1/ping",
    ]
    page_path = f"/orgs/{organisation.org_id}/usage/"
    server = None
    loop = None
    try:
        server, url = start_gunicorn(context, "portal.wsgi:application", environment)
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as directory:
            folder = Path(directory)
            api_script = rotating_script(folder, "api", api_paths)
            page_script = rotating_script(folder, "page", [page_path])
            cookie = f"Cookie: sessionid={session_cookie(user)}"
            loads = {
                "API mix (/usage, /api/v1/usage, ping)": start_wrk(
                    wrk,
                    url,
                    seconds=seconds,
                    connections=API_CONNECTIONS,
                    header=f"Authorization: Bearer {created.plaintext}",
                    script=api_script,
                ),
                "usage page (session)": start_wrk(
                    wrk,
                    url + page_path,
                    seconds=seconds,
                    connections=PAGE_CONNECTIONS,
                    header=cookie,
                    script=page_script,
                ),
            }
            loop = ImportLoop(context, environment, folder, org_id=organisation.org_id, month=end_month)
            loop.start()
            log(f"  soak: {seconds} s of mixed load; RSS read after {WARMUP_SECONDS} s and at the end")
            time.sleep(min(WARMUP_SECONDS, seconds // 4))
            workers_at_start = gunicorn_workers(server.pid)
            rss_start = {pid: rss_mb(pid) for pid in [server.pid, *workers_at_start]}
            load_at_start = os.getloadavg()
            outputs, statuses = {}, {}
            for name, process in loads.items():
                stdout, stderr = process.communicate(timeout=seconds + 120)
                if process.returncode != 0:
                    raise RuntimeError(f"wrk failed: {stderr.strip()[-300:]}")
                log(f"  soak: wrk {name}:\n{stdout.rstrip()}")
                outputs[name] = parse_wrk(stdout)
                statuses[name] = other_statuses(stdout)
            workers_at_end = gunicorn_workers(server.pid)
            rss_end = {pid: rss_mb(pid) for pid in [server.pid, *workers_at_end]}
            load_at_end = os.getloadavg()
            loop.stop.set()
            loop.join(timeout=300)
    finally:
        if loop is not None:
            loop.stop.set()
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        # The imported jobs are all in the report's last month: remove them and refresh it.
        Job.objects.filter(organisation_id=organisation.pk, external_id__startswith="soak-").delete()
        usage_mark_stale(organisation_id=organisation.pk, months=[parse_month(end_month)])
        usage_refresh(organisation_id=organisation.pk)
        created.api_key.delete()
        user.delete()

    figures = []
    total_requests = sum(load.requests for load in outputs.values())
    http_errors = sum(load.failures for load in outputs.values())
    errors = http_errors + loop.failures
    note = (
        f"{seconds} s; load average {load_at_start[0]:.1f} after warm-up, {load_at_end[0]:.1f} at end; "
        f"2 sync workers, {API_CONNECTIONS} + {PAGE_CONNECTIONS} connections"
    )
    figures.append(Figure("soak: requests served", total_requests, "", "", None, note=note))
    figures.append(
        Figure(
            "soak: errors (non-2xx, socket errors, failed imports)",
            errors,
            "",
            "= 0",
            errors == 0,
            note=f"HTTP {http_errors}"
            + "".join(f" ({name}: {found})" for name, found in statuses.items() if found)
            + f", imports {loop.failures} of {loop.runs}"
            + (f": {loop.last_error[-120:]}" if loop.last_error else ""),
        )
    )
    for name, load in outputs.items():
        figures.append(
            Figure(
                f"soak: {name} p50 / p99",
                load.p50_ms,
                "ms",
                "",
                None,
                note=f"p99 {load.p99_ms:,.1f} ms; {load.requests:,} requests, {load.requests_per_s:,.0f} req/s",
            )
        )
    import_seconds = sorted(loop.seconds)
    if import_seconds:
        figures.append(
            Figure(
                f"soak: import_jobs runs ({IMPORT_JOBS:,} jobs each)",
                loop.runs,
                "",
                "",
                None,
                note=f"median {import_seconds[len(import_seconds) // 2]:.2f} s, max {import_seconds[-1]:.2f} s",
            )
        )
    replaced = set(workers_at_start) != set(workers_at_end)
    labels = {server.pid: "master"} | {pid: f"worker {i + 1}" for i, pid in enumerate(workers_at_start)}
    for pid, name in labels.items():
        before, after = rss_start.get(pid), rss_end.get(pid)
        if before is None or after is None:
            figures.append(
                Figure(f"soak: RSS growth, gunicorn {name}", None, "MB", "flat", False, note="gone")
            )
            continue
        growth = after - before
        flat = growth < RSS_GROWTH_MB or growth / before * 100 < RSS_GROWTH_PERCENT
        figures.append(
            Figure(
                f"soak: RSS growth, gunicorn {name}",
                growth,
                "MB",
                f"< {RSS_GROWTH_PERCENT:.0f} % or < {RSS_GROWTH_MB:.0f} MB",
                flat and not replaced,
                note=f"{before:.1f} → {after:.1f} MB" + ("; a worker was replaced" if replaced else ""),
            )
        )
    return figures
