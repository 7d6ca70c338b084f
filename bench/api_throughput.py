"""Throughput of GET /usage (12 months) against a minimal authenticated endpoint, under gunicorn.

Usage (from the project root; the database must be reachable, it is created when missing):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_api_bench \\
    CACHE_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/api_throughput.py

What it does, all on loopback and bounded in time:
1. migrates the database and loads one organisation with 12 months of jobs and 5 keys through
   the services (idempotent: a second run reuses the jobs), plus a fresh key for this run;
2. measures the API-call counter on its own: one key's row incremented by 16 threads at once,
   to show how long requests of one key queue on that row (one statement each);
3. starts gunicorn (2 sync workers) on a free port with a random SECRET_KEY and throttling
   lifted, and runs wrk (or, without wrk, a Python thread pool) for --duration seconds with
   --connections connections against /api/v1/ping, then against /usage?start_month=..&end_month=..;
4. prints requests/s, p50 and p99 of both, the ratio (budget: /usage >= 0.7 x ping), and checks
   that the server counted every request as an API call.
"""

import argparse
import concurrent.futures
import datetime as dt
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
ORG_ID = "org_apibench"
JOBS_PER_MONTH = 1500  # crosses the standard plan's tier2 (rank 1,001) every month
MONTHS = 12
KEYS = 5
LANGUAGES = ["Hindi", "Tamil", "Telugu", "Punjabi", "Bengali"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per endpoint (default 20)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    return parser.parse_args()


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist."""
    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres"):
        return
    import psycopg

    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def setup_django(environment: dict[str, str]) -> None:
    os.environ.update(environment)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def prepare_data() -> tuple[str, str, str]:
    """The organisation's jobs and keys, and a new key for this run; returns (key, start, end)."""
    from django.core.management import call_command

    from accounts.models import ApiKey, Organisation
    from accounts.services import api_key_create, organisation_create
    from usage.engine.refresh import usage_refresh
    from usage.months import add_months, current_month, format_month
    from usage.services import JobInput, jobs_upsert

    call_command("migrate", verbosity=0, interactive=False)
    organisation = Organisation.objects.filter(org_id=ORG_ID).first() or organisation_create(
        name="API benchmark", org_id=ORG_ID
    )
    keys = []
    for index in range(KEYS):
        name = f"bench key {index + 1}"
        existing = ApiKey.objects.filter(organisation=organisation, name=name).first()
        keys.append(existing or api_key_create(organisation=organisation, name=name).api_key)

    end = current_month()
    start = add_months(end, -(MONTHS - 1))
    now = dt.datetime.now(dt.UTC)
    jobs = []
    for offset in range(MONTHS):
        month = add_months(start, offset)
        first = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
        # Spread the month's jobs over its first 20 days, or up to now for the current month.
        span = min(dt.timedelta(days=20), max(now - first, dt.timedelta(minutes=1)))
        step = span / JOBS_PER_MONTH
        for index in range(JOBS_PER_MONTH):
            key = keys[index % (KEYS + 1)] if index % (KEYS + 1) < KEYS else None
            jobs.append(
                JobInput(
                    organisation_id=organisation.pk,
                    api_key_id=key.pk if key else None,
                    external_id=f"bench-{format_month(month)}-{index}",
                    created_at=first + step * index,
                    language=LANGUAGES[index % len(LANGUAGES)],
                    audio_duration_seconds=60 + index % 600,
                    status="completed" if index % 17 else "failed",
                    has_transcript=index % 17 != 0,
                    has_lrc=index % 13 != 0,
                    transcription_tokens=100 + index % 900,
                    note_tokens=50 + index % 450,
                )
            )
    for batch in range(0, len(jobs), 5000):
        jobs_upsert(jobs=jobs[batch : batch + 5000])
    usage_refresh(organisation_id=organisation.pk)
    run_key = api_key_create(organisation=organisation, name=f"bench run {secrets.token_hex(4)}")
    return run_key.plaintext, format_month(start), format_month(end)


def measure_counter(threads: int = 16, per_thread: int = 200) -> dict[str, dict]:
    """Latency of the call counter's statement: alone, then from ``threads`` threads at once on
    one key's row (requests of one key queue there), then on ``threads`` keys of the organisation
    (they should not queue at all). Each scenario also checks the count is exact.
    """
    from django.db import connection

    from accounts.models import Organisation
    from accounts.services import api_key_create
    from usage.api.calls import api_call_record
    from usage.models import ApiCallCount

    organisation = Organisation.objects.get(org_id=ORG_ID)

    def probe_key():
        return api_key_create(organisation=organisation, name=f"counter probe {secrets.token_hex(4)}").api_key

    def worker(api_key) -> list[float]:
        latencies = []
        try:
            for _ in range(per_thread):
                started = time.perf_counter()
                api_call_record(api_key=api_key, now=dt.datetime.now(dt.UTC))
                latencies.append(time.perf_counter() - started)
        finally:
            connection.close()
        return latencies

    def scenario(keys: list) -> dict:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(keys)) as pool:
            results = list(pool.map(worker, keys))
        elapsed = time.perf_counter() - started
        latencies = [latency for batch in results for latency in batch]
        counted = sum(ApiCallCount.objects.filter(api_key__in=set(keys)).values_list("calls", flat=True))
        return {
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "per_s": len(latencies) / elapsed,
            "counted": counted,
            "expected": len(latencies),
        }

    one_key = probe_key()
    return {
        "alone": scenario([probe_key()]),
        f"{threads} threads, one key": scenario([one_key] * threads),
        f"{threads} threads, {threads} keys": scenario([probe_key() for _ in range(threads)]),
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(port: int, workers: int, environment: dict[str, str]) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "portal.wsgi:application",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **environment})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("gunicorn exited during start-up") from None
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not start within 30 s")


def run_wrk(url: str, key: str, duration: int, connections: int) -> dict:
    command = [
        "wrk",
        f"--threads={min(2, connections)}",
        f"--connections={connections}",
        f"--duration={duration}s",
        "--timeout=10s",
        "--latency",
        "--header",
        f"Authorization: Bearer {key}",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True).stdout

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
    }


def run_python_load(url: str, key: str, duration: int, connections: int) -> dict:
    """A bounded thread-pool load generator, for machines without wrk (it shares the CPU)."""
    import requests

    deadline = time.monotonic() + duration

    def client() -> tuple[list[float], int]:
        latencies, errors = [], 0
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {key}"
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = session.get(url, timeout=10)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
        return latencies, errors

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=connections) as pool:
        results = list(pool.map(lambda _: client(), range(connections)))
    elapsed = time.monotonic() - started
    latencies = [latency for batch, _ in results for latency in batch]
    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "requests": len(latencies),
        "errors": sum(errors for _, errors in results),
    }


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (gunicorn's workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                pids.append(int(entry.name))
    return pids


def database_backend_pids() -> list[int]:
    """PostgreSQL server processes serving other connections to the benchmark database."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (processes that are gone count as 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def calls_of_key(key: str) -> int:
    from accounts.keys import parse_lookup
    from usage.models import ApiCallCount

    return sum(ApiCallCount.objects.filter(api_key__lookup=parse_lookup(key)).values_list("calls", flat=True))


def main() -> None:
    args = parse_args()
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_api_bench")
    environment = {
        "DATABASE_URL": database_url,
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "API_THROTTLE_RATE": "1000000000/min",
        "LOG_LEVEL": "WARNING",
        "PYTHONWARNINGS": "ignore::UserWarning",  # whitenoise: no collected static files; irrelevant here
    }
    if os.environ.get("CACHE_URL"):
        environment["CACHE_URL"] = os.environ["CACHE_URL"]
    ensure_database(database_url)
    setup_django(environment)
    from django.db import connection

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run")
    print(f"database: {connection.vendor} {urlparse(database_url).path.lstrip('/')}")
    print(f"cache: {environment.get('CACHE_URL', 'local memory (per process)')}")
    started = time.monotonic()
    key, start_month, end_month = prepare_data()
    print(f"data: {MONTHS} months x {JOBS_PER_MONTH} jobs, {KEYS} keys ({time.monotonic() - started:.1f} s)")

    print("call counter (one INSERT ... ON CONFLICT DO UPDATE per call, autocommit):")
    for name, figures in measure_counter().items():
        print(
            f"  {name:<24} p50 {figures['p50_ms']:6.2f} ms   p99 {figures['p99_ms']:6.2f} ms   "
            f"{figures['per_s']:6.0f} calls/s   counted {figures['counted']} of {figures['expected']}"
        )
    connection.close()

    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    runner = run_wrk if loadgen == "wrk" else run_python_load
    port = free_port()
    server = start_gunicorn(port, args.workers, environment)
    base = f"http://127.0.0.1:{port}"
    endpoints = {
        "minimal (/api/v1/ping)": f"{base}/api/v1/ping",
        f"/usage {start_month}..{end_month}": f"{base}/usage?start_month={start_month}&end_month={end_month}",
    }
    results = {}
    try:
        import requests

        for url in endpoints.values():
            for _ in range(20):  # warm every worker's connection and caches
                response = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
                assert response.status_code == 200, response.text
        warm_calls = calls_of_key(key)
        sent = 0
        for name, url in endpoints.items():
            app_pids, database_pids = child_pids(server.pid), database_backend_pids()
            app_before, database_before = cpu_seconds(app_pids), cpu_seconds(database_pids)
            results[name] = runner(url, key, args.duration, args.connections)
            served = max(1, results[name]["requests"])
            results[name]["app_cpu_ms"] = (cpu_seconds(app_pids) - app_before) / served * 1000
            results[name]["database_cpu_ms"] = (cpu_seconds(database_pids) - database_before) / served * 1000
            sent += results[name]["requests"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"load: {loadgen}, {args.connections} connections, {args.duration} s per endpoint, "
        f"gunicorn {args.workers} sync workers"
    )
    for name, figures in results.items():
        print(
            f"  {name:<32} {figures['requests_per_s']:8.0f} req/s   p50 {figures['p50_ms']:6.2f} ms   "
            f"p99 {figures['p99_ms']:6.2f} ms   ({figures['requests']} requests, {figures['errors']} non-2xx)"
        )
    for name, figures in results.items():
        print(
            f"  {name:<32} CPU per request: gunicorn {figures['app_cpu_ms']:.2f} ms + "
            f"PostgreSQL {figures['database_cpu_ms']:.2f} ms"
        )
    minimal, usage = (figures["requests_per_s"] for figures in results.values())
    ratio = usage / minimal
    print(f"ratio /usage : minimal = {ratio:.2f} (budget >= 0.70: {'met' if ratio >= 0.7 else 'NOT met'})")
    cpu_minimal, cpu_usage = (
        figures["app_cpu_ms"] + figures["database_cpu_ms"] for figures in results.values()
    )
    print(
        f"ratio of CPU cost per request (minimal / usage) = {cpu_minimal / cpu_usage:.2f} "
        "(what the throughput ratio tends to on an otherwise idle, CPU-bound machine)"
    )
    counted = calls_of_key(key) - warm_calls
    print(f"API calls counted during the load: {counted} (the load generator completed {sent})")
    print(
        f"load average after the run: {os.getloadavg()[0]:.2f} (other work on the machine skews every figure)"
    )
    retire_run_keys()


def retire_run_keys() -> None:
    """Revoke this run's keys, so the organisation keeps only its 5 keys in use."""
    from accounts.models import ApiKey

    ApiKey.objects.filter(organisation__org_id=ORG_ID, revoked_at__isnull=True).exclude(
        name__startswith="bench key "
    ).update(revoked_at=dt.datetime.now(dt.UTC))


if __name__ == "__main__":
    main()
