"""HTTP throughput of the portal's API against a bare DRF endpoint (the anchor), measured with wrk.

    make bench-pg BENCH_ARGS="--only api --scale small"   # 5 s runs: about 1½ minutes
    make bench-pg BENCH_ARGS="--only api"                 # 10 s runs: about 2½ minutes

Two gunicorn servers run side by side on loopback with the same settings (2 sync workers, the
benchmark database, the Redis cache at ``BENCH_CACHE_URL``, default ``redis://127.0.0.1:6379/3``,
throttling lifted): the portal, and the anchor (``bench/anchor/``), a minimal DRF view that checks
the Bearer key exactly as the portal does with one indexed lookup in the portal's own key table.
wrk loads each endpoint of ``endpoints()`` in turn with 16 connections, round after round (the
order rotates each round), and the figures are medians over the rounds; a ratio is the median of
the per-round ratios, the two sides having run a few seconds apart.

Every request carries a key created for the run in the data set's largest organisation and
deleted afterwards with its call counts, so the data set is left as it was found. The cached
``/usage`` bodies of that organisation are deleted from the cache first: another database using
the same Redis database could have left a body under the same key.

An endpoint that answers 404 when probed is not served yet: it is listed as n/a and skipped. To
measure one more endpoint, add an ``Endpoint`` to ``endpoints()``; a request with a body goes
through a Lua script (``wrk_script``). Ingestion (``POST /api/v1/ingest/jobs``) will take a
service key, not a customer key, and write a job that the run must then remove: its entry needs
both when that endpoint exists (until then it answers 404 and is skipped).

(Long because it owns the whole HTTP harness: servers, wrk, the anchor, data, and the table.)
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .common import Context, Figure, at_least, at_most, log, median

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/3"
WRK_INSTALL = "sudo apt-get update && sudo apt-get install -y wrk"
CONNECTIONS = 16
WORKERS = 2
SECONDS_PER_RUN = {"full": 10, "small": 5}
WARMUP_SECONDS = 2


@dataclass(frozen=True)
class Endpoint:
    """One request to load: ``method`` ``path`` on ``server`` ("portal" or "anchor"), with the
    run's key as Bearer token and, when given, ``body`` as JSON. ``slug`` names it for the ratios;
    ``name`` is its line in the table."""

    slug: str
    name: str
    path: str
    method: str = "GET"
    body: dict | None = None
    server: str = "portal"


def endpoints(*, org_id: str, start_month: str, end_month: str) -> list[Endpoint]:
    """What the benchmark loads, the anchor first (the ratios are to it)."""
    item = {
        "org_id": org_id,
        "external_id": "bench-api-ingest",
        "api_key": None,
        "created_at": f"{end_month}-01T00:00:00Z",
        "language": "Hindi",
        "audio_duration_seconds": 60,
        "status": "completed",
        "has_transcript": True,
        "has_lrc": True,
        "transcription_tokens": 100,
        "note_tokens": 50,
    }
    return [
        Endpoint("anchor", "anchor: bare DRF view, key lookup + HMAC", "/anchor", server="anchor"),
        Endpoint("ping", "GET /api/v1/ping", "/api/v1/ping"),
        Endpoint(
            "usage",
            f"GET /usage {start_month}..{end_month} (cached body)",
            f"/usage?start_month={start_month}&end_month={end_month}",
        ),
        Endpoint("all_time", "GET /api/v1/usage", "/api/v1/usage"),
        Endpoint("jobs", f"GET /api/v1/jobs?month={end_month}", f"/api/v1/jobs?month={end_month}"),
        Endpoint(
            "ingest", "POST /api/v1/ingest/jobs (1 item)", "/api/v1/ingest/jobs", "POST", {"jobs": [item]}
        ),
    ]


@dataclass
class Load:
    """What wrk reported for one run of one endpoint, plus the CPU the servers spent on it."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int  # non-2xx/3xx answers and socket errors
    cpu_ms_per_request: float = 0.0


@dataclass
class Measured:
    """An endpoint and its loads, one per round."""

    endpoint: Endpoint
    loads: list[Load] = field(default_factory=list)

    def median_of(self, attribute: str) -> float:
        return median([getattr(load, attribute) for load in self.loads])


# --- wrk ----------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The path of wrk; installed with apt-get when missing and running as root, else an error
    that gives the command. There is no other load generator: a Python one shares the CPU with
    the servers it measures, and its figures do not compare with wrk's."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is not installed: installing it (apt-get update && apt-get install -y wrk)")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            if subprocess.run(command, env=environment, check=False).returncode != 0:
                break
        found = shutil.which("wrk")
        if found:
            return found
    raise RuntimeError(f"the HTTP benchmark needs wrk, which is not installed: run `{WRK_INSTALL}`")


def wrk_script(endpoint: Endpoint, directory: Path) -> Path | None:
    """A Lua script in ``directory`` that makes wrk send ``endpoint``'s method and JSON body
    (None for a GET without a body: wrk's default request)."""
    if endpoint.method == "GET" and endpoint.body is None:
        return None
    body = json.dumps(endpoint.body) if endpoint.body is not None else ""
    level = 0
    while f"]{'=' * level}]" in body:  # a Lua long string may hold anything but its own closer
        level += 1
    path = directory / f"{endpoint.slug}.lua"
    path.write_text(
        f'wrk.method = "{endpoint.method}"\n'
        f"wrk.body = [{'=' * level}[{body}]{'=' * level}]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def run_wrk(wrk: str, url: str, *, key: str, seconds: int, script: Path | None) -> Load:
    """One wrk run: one thread (the servers need the cores), ``CONNECTIONS`` connections."""
    command = [
        wrk,
        "--threads=1",
        f"--connections={CONNECTIONS}",
        f"--duration={seconds}s",
        "--timeout=10s",
        "--latency",
        "--header",
        f"Authorization: Bearer {key}",
    ]
    if script is not None:
        command += ["--script", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> Load:
    """The figures of wrk's ``--latency`` report."""

    def latency_ms(percent: str) -> float:
        value, unit = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Load(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=latency_ms("50"),
        p99_ms=latency_ms("99"),
        requests=int(re.search(r"(\d+) requests in", output).group(1)),
        failures=(int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(int(count) for count in socket_errors.groups()) if socket_errors else 0),
    )


# --- Servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(
    context: Context, application: str, environment: dict[str, str], *, workers: int = WORKERS
) -> tuple[subprocess.Popen, str]:
    """gunicorn serving ``application`` on a free loopback port; returns (process, base URL).

    Without its control socket: every gunicorn would otherwise share ~/.gunicorn/gunicorn.ctl,
    the two servers of a run as well as any other on the machine."""
    port = free_port()
    command = [
        str(Path(context.python).parent / "gunicorn"),
        application,
        f"--workers={workers}",
        "--worker-class=sync",
        f"--bind=127.0.0.1:{port}",
        "--log-level=warning",
        "--no-control-socket",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=environment)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn {application} exited during start-up") from None
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"gunicorn {application} did not start within 30 s")


def probe(url: str, endpoint: Endpoint, key: str) -> tuple[int, str]:
    """One request: (status, start of the body)."""
    data = json.dumps(endpoint.body).encode() if endpoint.body is not None else None
    request = urllib.request.Request(url, data=data, method=endpoint.method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(200).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(200).decode(errors="replace")


# --- CPU accounting -----------------------------------------------------------------------------


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
    """The PostgreSQL server processes of the other connections to the benchmark database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of ``pids`` that still runs."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots. A process that started in between counts whole; one
    that ended counts nothing (a worker's database connection is replaced after CONN_MAX_AGE)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# --- The benchmark ------------------------------------------------------------------------------


def seconds_per_run(context: Context) -> int:
    return SECONDS_PER_RUN["small" if context.quick else "full"]


def clear_cached_bodies(cache_url: str, organisation_pk: int) -> None:
    """Check the cache answers, and delete the organisation's cached ``/usage`` bodies."""
    import redis

    client = redis.Redis.from_url(cache_url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        raise RuntimeError(
            f"the cache at {cache_url} does not answer ({error}); set BENCH_CACHE_URL"
        ) from None
    for name in client.scan_iter(match=f"*usage-body:{organisation_pk}:*"):
        client.delete(name)


def measure(
    context: Context,
    wrk: str,
    targets: list[tuple[Endpoint, str]],
    key: str,
    servers: dict[str, subprocess.Popen],
    cache_url: str,
) -> tuple[list[Measured], int]:
    """Warm every endpoint up, then ``context.repeat`` rounds in which each endpoint runs once,
    starting one endpoint later each round. Returns the loads and the API calls the portal counted
    during the rounds."""
    seconds = seconds_per_run(context)
    results = [Measured(endpoint) for endpoint, _ in targets]
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as directory:
        scripts = [wrk_script(endpoint, Path(directory)) for endpoint, _ in targets]
        for (_, url), script in zip(targets, scripts, strict=True):
            run_wrk(wrk, url, key=key, seconds=WARMUP_SECONDS, script=script)
        calls_before = _calls_of(key, cache_url)
        for round_index in range(context.repeat):
            log(f"  api round {round_index + 1} of {context.repeat} ({len(targets)} × {seconds} s)")
            for step in range(len(targets)):
                index = (round_index + step) % len(targets)
                (endpoint, url), script = targets[index], scripts[index]
                server = servers[endpoint.server].pid
                before = cpu_by_pid(child_pids(server) + database_backend_pids())
                load = run_wrk(wrk, url, key=key, seconds=seconds, script=script)
                after = cpu_by_pid(child_pids(server) + database_backend_pids())
                load.cpu_ms_per_request = cpu_used(before, after) / max(1, load.requests) * 1000
                results[index].loads.append(load)
    return results, _calls_of(key, cache_url) - calls_before


def _calls_of(key: str, cache_url: str) -> int:
    """The API calls counted for ``key`` so far (those the servers still hold in Redis moved first)."""
    from django.test import override_settings

    from accounts.keys import parse_lookup
    from portal.hot_redis import REDIS_CACHE_BACKEND
    from usage.calls import api_calls_flush
    from usage.models import ApiCallCount

    with override_settings(CACHES={"default": {"BACKEND": REDIS_CACHE_BACKEND, "LOCATION": cache_url}}):
        api_calls_flush()
    counts = ApiCallCount.objects.filter(api_key__lookup=parse_lookup(key)).values_list("calls", flat=True)
    return sum(counts)


def run(context: Context) -> list[Figure]:
    """The anchor, ping, ``/usage`` and ``/api/v1/usage`` under the same load, and the ratios."""
    from accounts.models import Organisation
    from accounts.services import api_key_create

    wrk = ensure_wrk()
    dataset = context.dataset
    cache_url = os.environ.get("BENCH_CACHE_URL", DEFAULT_CACHE_URL)
    clear_cached_bodies(cache_url, dataset.big.pk)
    organisation = Organisation.objects.get(pk=dataset.big.pk)
    created = api_key_create(organisation=organisation, name=f"bench api run {time.time_ns()}")
    environment = context.subprocess_env(
        CACHE_URL=cache_url, API_THROTTLE_RATE="1000000000/min", LOG_LEVEL="ERROR"
    )
    servers: dict[str, subprocess.Popen] = {}
    try:
        servers["portal"], portal_url = start_gunicorn(context, "portal.wsgi:application", environment)
        servers["anchor"], anchor_url = start_gunicorn(
            context,
            "bench.anchor.wsgi:application",
            {**environment, "DJANGO_SETTINGS_MODULE": "bench.anchor.settings"},
        )
        bases = {"portal": portal_url, "anchor": anchor_url}
        start_month, end_month = dataset.report_months
        targets, skipped = [], []
        for endpoint in endpoints(org_id=dataset.big.org_id, start_month=start_month, end_month=end_month):
            url = bases[endpoint.server] + endpoint.path
            status, body = probe(url, endpoint, created.plaintext)
            if 200 <= status < 300:
                targets.append((endpoint, url))
            elif endpoint.slug == "anchor":
                raise RuntimeError(f"the anchor answered {status}: {body[:120]}")
            else:
                skipped.append((endpoint, status, body))
        measured, calls = measure(context, wrk, targets, created.plaintext, servers, cache_url)
    finally:
        for process in servers.values():
            process.terminate()
        for process in servers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        created.api_key.delete()  # with its call counts (cascade)
    return figures(context, measured, skipped, calls)


def _ratio(side: Measured, reference: Measured, attribute: str) -> float:
    """The median over rounds of ``side``'s figure ÷ ``reference``'s in the same round."""
    return median(
        [
            getattr(mine, attribute) / getattr(theirs, attribute)
            for mine, theirs in zip(side.loads, reference.loads, strict=True)
        ]
    )


# The budgeted ratios: (name, side, reference, figure, at_least or at_most, limit).
RATIOS = (
    ("ping ÷ anchor, req/s (#13)", "ping", "anchor", "requests_per_s", at_least, 0.8),
    ("/usage ÷ anchor, req/s (#13)", "usage", "anchor", "requests_per_s", at_least, 0.7),
    ("/usage ÷ anchor, p99 (#13)", "usage", "anchor", "p99_ms", at_most, 3.0),
    ("/usage ÷ ping, req/s (#4)", "usage", "ping", "requests_per_s", at_least, 0.7),
)


def figures(context: Context, measured: list[Measured], skipped: list[tuple], calls: int) -> list[Figure]:
    """One line per endpoint (req/s; p50, p99 and CPU per request in the notes), the ratios, and
    the API calls the portal counted."""
    by_slug = {result.endpoint.slug: result for result in measured}
    anchor = by_slug["anchor"]
    out = []
    for result in measured:
        rates = [load.requests_per_s for load in result.loads]
        note = (
            f"p50 {result.median_of('p50_ms'):.1f} ms, p99 {result.median_of('p99_ms'):.1f} ms; "
            f"{min(rates):,.0f}–{max(rates):,.0f} req/s in {len(rates)} rounds; "
            f"CPU {result.median_of('cpu_ms_per_request'):.1f} ms/request (gunicorn + PostgreSQL)"
        )
        failures = sum(load.failures for load in result.loads)
        if failures:
            note += f"; {failures:,} failed requests"
        out.append(Figure(result.endpoint.name, round(median(rates)), "req/s", note=note))
    for endpoint, status, body in skipped:
        if status == 404:
            out.append(Figure(endpoint.name, None, note="answers 404: not served yet, skipped"))
        else:
            out.append(Figure(endpoint.name, None, passed=False, note=f"answers {status}: {body[:100]}"))
    for name, side, reference, attribute, check, limit in RATIOS:
        budget = f"{'≥' if check is at_least else '≤'} {limit:.1f}×"
        if side not in by_slug or reference not in by_slug:
            out.append(Figure(name, None, budget=budget, note="not measured"))
            continue
        value = _ratio(by_slug[side], by_slug[reference], attribute)
        note = f"median of {len(anchor.loads)} per-round ratios"
        out.append(Figure(name, round(value, 2), "×", budget, check(value, limit), note=note))
    served = sum(
        load.requests for result in measured if result.endpoint.server == "portal" for load in result.loads
    )
    out.append(
        Figure(
            "API calls counted by the portal during the timed runs",
            calls,
            "calls",
            note=f"wrk completed {served:,} (a request in flight when a run ends is counted, not completed); "
            f"wrk 1 thread, {CONNECTIONS} connections, {seconds_per_run(context)} s a run; "
            f"gunicorn {WORKERS} sync workers each",
        )
    )
    return out
