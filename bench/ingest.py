"""Ingestion over HTTP against ``import_jobs``, and the cost of webhooks (issues 14 and 17).

    make bench-pg BENCH_ARGS="--only ingest --scale small"   # about 4 minutes
    make bench-pg BENCH_ARGS="--only ingest"                 # about 6 minutes

PostgreSQL only, with the Redis cache (``BENCH_CACHE_URL``, default ``redis://127.0.0.1:6379/3``),
which is also the Celery broker of every process started here (the deliveries that the webhook
side queues go there, and a real worker drains them in the last measurement).

The jobs: ``JOBS_PER_ORG`` jobs (``import_jobs`` lines and ingestion items alike) for each of
``ORGS`` organisations created for the run, all in the data set's last month, in time order across the
organisations, a tenth of them with a key, so each organisation's month passes job 1,000 (tier2)
on the way. Each side of each round writes a fresh set of these organisations, so every
side writes new jobs into the same state; every organisation, job, key, event and delivery made
here is deleted at the end, so the data set is left as it was found.

Four sides take turns, round after round (at least 7; the order rotates each round):

- ``import_jobs`` of the JSON Lines file: the wall time of the whole ``manage.py import_jobs``
  child process (Django start-up included), as the SQLite import budget measures it (its fixed
  cost, the import of an empty file, is shown apart);
- ingestion: the same jobs as 1,000-item ``POST /api/v1/ingest/jobs`` requests (bodies serialised
  before the clock starts) from 2 client threads to gunicorn (2 sync workers), with a service key
  created for the run, until the organisations' usage is fresh (no stale mark left: the server
  refreshes it once each answer is sent); every answer is checked (1,000 ``created``);
- each of the two again with webhooks configured for the organisations: an endpoint subscribed to
  every event type (the local receiver) and two spend thresholds each, so detection records
  events, writes deliveries and queues them on the broker inside the timed work.

After the first ingestion of a round, the same requests are sent again (the replay: 1,000
``unchanged`` each). Then the one-item request, the platform's common case: a status update of an
existing job (each request a different job, each answered ``updated``), and ``GET /api/v1/ping``
with a customer key, sent one at a time taking turns; medians of their latencies. The usage
refresh of an ingestion runs once its answer is sent: the next request waits for it to finish.

Finally the deliveries: a receiver (``ThreadingHTTPServer`` in a child process answering 204),
1,000 plain ``POST``s of a delivery-sized body to it from this process (one ``httpx.Client``, one
request after the other; the receiver closes each connection, as it does a delivery's), against
1,000 deliveries queued with ``webhooks.services.deliveries_enqueue`` (as a refresh that raised
1,000 events queues them: ``deliver_batch`` tasks of 50) and drained by a real Celery worker with
Celery's default concurrency (prefork, one process a core) running the production code: load,
claim, vet the URL, sign, POST, record the attempts, mark delivered. The drain is timed from the first
``apply_async`` to the moment every delivery is ``delivered`` in the database (polled every
50 ms); the worker is started and warmed up before.

(Long because it owns its data, its servers, the worker and the receiver, and cleans them all up.)
"""

import datetime as dt
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path

from .api_throughput import DEFAULT_CACHE_URL, start_gunicorn
from .common import Context, Figure, at_least, at_most, log, median

ROOT = Path(__file__).resolve().parent.parent
ORGS = {"full": 10, "small": 5}
JOBS_PER_ORG = 2_000
BATCH = 1_000
CLIENT_THREADS = 2
SINGLE_REQUESTS = {"full": 200, "small": 100}
DELIVERIES = 1_000
WORKER_PROCESSES = os.cpu_count() or 1  # Celery's default concurrency
SIDES = ("import", "ingest", "import+webhooks", "ingest+webhooks")

RECEIVER = """
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass
class Run:
    """What this run created, so that everything can be removed at the end."""

    tag: str
    org_pks: list[int] = field(default_factory=list)
    service_key: object = None  # accounts.services.CreatedServiceKey
    api_key: object = None  # accounts.services.CreatedKey
    update_org_ids: list[str] = field(default_factory=list)  # whose jobs the one-item POSTs update


def _tag() -> str:
    """A short lowercase id for this run's organisations (an org id is 'org_' + [a-z0-9])."""
    digits, value = "0123456789abcdefghijklmnopqrstuvwxyz", time.time_ns() // 1_000_000
    out = ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return out[-7:]


# --- Data ---------------------------------------------------------------------------------------


def organisations_create(run: Run, prefix: str, count: int, *, webhooks: str | None) -> list[str]:
    """``count`` organisations with a key "k1"; with ``webhooks`` (a receiver URL), an endpoint of
    every event type and two spend thresholds each."""
    from django.test import override_settings

    from accounts.services import api_key_create, organisation_create
    from webhooks.services import spend_threshold_add, webhook_endpoint_create

    org_ids = []
    for index in range(count):
        org_id = f"org_bi{run.tag}{prefix}{index:02d}"
        organisation = organisation_create(name=f"bench ingest {org_id}", org_id=org_id)
        run.org_pks.append(organisation.pk)
        api_key_create(organisation=organisation, name="k1")
        if webhooks:
            with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=True):
                webhook_endpoint_create(organisation=organisation, url=webhooks)
            for amount in ("1", "1000000"):
                spend_threshold_add(organisation=organisation, amount=amount)
        org_ids.append(org_id)
    return org_ids


def job_items(org_ids: list[str], month: str) -> list[dict]:
    """``JOBS_PER_ORG`` jobs per organisation in ``month``, in time order across them."""
    year, number = (int(part) for part in month.split("-"))
    start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
    total = JOBS_PER_ORG * len(org_ids)
    step = dt.timedelta(days=27) / total
    languages = ("Hindi", "Tamil", "Telugu", "Bengali", "Marathi")
    return [
        {
            "org_id": org_ids[index % len(org_ids)],
            "external_id": f"job-{index:06d}",
            "api_key": "k1" if index % 10 == 0 else None,
            "created_at": (start + step * index).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "language": languages[index % len(languages)],
            "audio_duration_seconds": 30 + index % 600,
            "status": "failed" if index % 25 == 0 else "completed",
            "has_transcript": True,
            "has_lrc": index % 3 != 0,
            "transcription_tokens": 20 + index % 500,
            "note_tokens": index % 200,
        }
        for index in range(total)
    ]


def run_cleanup(run: Run) -> None:
    """Delete what the run made: its organisations with their jobs (jobs and keys protect their
    organisation, so they go first), aggregates, endpoints, events and deliveries, and its keys.
    Whatever an interrupted run left (same names) goes too."""
    from django.db import connection

    from accounts.models import ApiKey, Organisation, ServiceKey

    pks = set(run.org_pks) | set(
        Organisation.objects.filter(org_id__startswith="org_bi", name__startswith="bench ").values_list(
            "pk", flat=True
        )
    )
    if pks:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM usage_job WHERE organisation_id = ANY(%s)", [sorted(pks)])
        ApiKey.objects.filter(organisation_id__in=pks).delete()  # with their call counts
        Organisation.objects.filter(pk__in=pks).delete()
    ServiceKey.objects.filter(name__startswith="bench ingest ").delete()
    ApiKey.objects.filter(name__startswith="bench ping ").delete()


# --- Clients ------------------------------------------------------------------------------------


def _request(base: str, method: str, path: str, *, body: bytes | None, key: str) -> tuple[int, bytes]:
    parsed = urllib.parse.urlsplit(base)
    connection = HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post_batches(base: str, key: str, bodies: list[bytes], *, expect: str, org_ids: list[str]) -> float:
    """Seconds to send every body with ``CLIENT_THREADS`` threads and for the usage of the
    organisations to be fresh (the server refreshes it once each answer is sent: until no stale
    mark is left, the work is not done); every answer must be a 200 with ``expect``
    (``created``/``unchanged``) for all its items."""
    from usage.models import StaleMonth

    position = iter(range(len(bodies)))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            status, answer = _request(base, "POST", "/api/v1/ingest/jobs", body=bodies[index], key=key)
            if status != 200:
                failures.append(f"{status}: {answer[:200]!r}")
                return
            counts = json.loads(answer)
            if counts[expect] != BATCH:
                failures.append(f"batch {index}: {expect} {counts[expect]} of {BATCH}")

    threads = [threading.Thread(target=worker) for _ in range(CLIENT_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while StaleMonth.objects.filter(organisation__org_id__in=org_ids).exists():
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"ingestion failed: {failures[0]}")
    return seconds


def import_file(context: Context, environment: dict[str, str], path: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [context.python, "manage.py", "import_jobs", str(path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"import_jobs failed: {result.stderr[-300:]}")
    return seconds


# --- The benchmark ------------------------------------------------------------------------------


def run(context: Context) -> list[Figure]:
    from accounts.models import Organisation
    from accounts.services import api_key_create, service_key_create

    scale = "small" if context.quick else "full"
    cache_url = os.environ.get("BENCH_CACHE_URL", DEFAULT_CACHE_URL)
    run_state = Run(tag=_tag())
    receiver, receiver_url = start_receiver(context)
    environment = context.subprocess_env(
        CACHE_URL=cache_url,
        CELERY_BROKER_URL=cache_url,
        API_THROTTLE_RATE="1000000000/min",
        API_INGEST_THROTTLE_RATE="1000000000/min",
        WEBHOOK_ALLOW_PRIVATE_URLS="True",
        LOG_LEVEL="ERROR",
    )
    server = None
    run_cleanup(run_state)  # what an interrupted run may have left
    try:
        run_state.service_key = service_key_create(name=f"bench ingest {run_state.tag}")
        secret = run_state.service_key.plaintext
        run_state.api_key = api_key_create(
            organisation=Organisation.objects.get(pk=context.dataset.small.pk),
            name=f"bench ping {run_state.tag}",
        )
        server, base = start_gunicorn(context, "portal.wsgi:application", environment)
        figures = throughput(context, run_state, environment, base, secret, receiver_url, scale=scale)
        figures += single_item(context, run_state, base, secret, scale=scale)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        _queue_purge(cache_url)
    try:
        figures += deliveries(context, run_state, environment, receiver_url)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        _queue_purge(cache_url)
        run_cleanup(run_state)
    return figures


def rounds(context: Context) -> int:
    """Rounds of the four sides: at least 7, their figures moving most with the machine's load."""
    return max(7, context.repeat)


def throughput(
    context: Context, run_state: Run, environment, base: str, secret: str, receiver_url: str, *, scale: str
) -> list[Figure]:
    """Rounds of the four sides (and the replay after the first ingestion), taking turns."""
    month = context.dataset.months[-1]
    orgs = ORGS[scale]
    jobs = orgs * JOBS_PER_ORG
    seconds: dict[str, list[float]] = {side: [] for side in (*SIDES, "replay", "start-up")}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as directory:
        for round_index in range(rounds(context)):
            order = SIDES[round_index % len(SIDES) :] + SIDES[: round_index % len(SIDES)]
            log(f"  ingest round {round_index + 1} of {rounds(context)}: {', '.join(order)}")
            for side in order:
                prefix = f"r{round_index}{'abcd'[SIDES.index(side)]}"
                org_ids = organisations_create(
                    run_state, prefix, orgs, webhooks=receiver_url if "webhooks" in side else None
                )
                items = job_items(org_ids, month)
                if side.startswith("import"):
                    path = Path(directory) / f"{prefix}.jsonl"
                    path.write_text("".join(json.dumps(item) + "\n" for item in items))
                    seconds[side].append(import_file(context, environment, path))
                    if side == "import":  # the fixed cost of the command: an empty file
                        empty = Path(directory) / "empty.jsonl"
                        empty.write_text("")
                        seconds["start-up"].append(import_file(context, environment, empty))
                else:
                    bodies = [
                        json.dumps({"jobs": items[start : start + BATCH]}).encode()
                        for start in range(0, len(items), BATCH)
                    ]
                    seconds[side].append(
                        post_batches(base, secret, bodies, expect="created", org_ids=org_ids)
                    )
                    if side == "ingest":
                        seconds["replay"].append(
                            post_batches(base, secret, bodies, expect="unchanged", org_ids=org_ids)
                        )
                        run_state.update_org_ids = org_ids
    rate = {side: [jobs / value for value in values] for side, values in seconds.items()}

    def per_round(side: str, reference: str) -> float:
        return median([a / b for a, b in zip(rate[side], rate[reference], strict=True)])

    def note(side: str) -> str:
        return f"median {median(seconds[side]):.2f} s for {jobs:,} jobs (n={len(seconds[side])}, " + (
            f"{min(seconds[side]):.2f}–{max(seconds[side]):.2f} s)"
        )

    figures = [
        Figure(
            f"import_jobs {jobs:,} lines into PostgreSQL (whole command)",
            round(median(rate["import"])),
            "jobs/s",
            note=note("import"),
        ),
        Figure(
            f"ingest {jobs:,} jobs, {BATCH:,}-item POSTs, {CLIENT_THREADS} threads",
            round(median(rate["ingest"])),
            "jobs/s",
            note=note("ingest") + "; gunicorn 2 sync workers",
        ),
        Figure(
            "replay of the same POSTs (all unchanged)",
            round(median(rate["replay"])),
            "jobs/s",
            note=note("replay"),
        ),
        Figure(
            "import_jobs with webhooks configured",
            round(median(rate["import+webhooks"])),
            "jobs/s",
            note=note("import+webhooks") + "; an endpoint and 2 spend thresholds per organisation",
        ),
        Figure(
            "ingest with webhooks configured",
            round(median(rate["ingest+webhooks"])),
            "jobs/s",
            note=note("ingest+webhooks"),
        ),
    ]
    ratios = (
        ("ingest ÷ import_jobs, jobs/s (#14)", "ingest", "import", at_least, 0.5),
        ("replay ÷ first ingest, jobs/s (#14)", "replay", "ingest", at_least, 2.0),
    )
    without_start = median(
        [
            (whole - start) / ingest
            for whole, start, ingest in zip(
                seconds["import"], seconds["start-up"], seconds["ingest"], strict=True
            )
        ]
    )
    figures.append(
        Figure(
            "import_jobs of an empty file (the command's fixed cost)",
            round(median(seconds["start-up"]), 3),
            "s",
            note=f"ingest ÷ import_jobs without it: {without_start:.2f}× (information)",
        )
    )
    for name, side, reference, check, limit in ratios:
        value = per_round(side, reference)
        figures.append(
            Figure(
                name,
                round(value, 2),
                "×",
                f"≥ {limit:.1f}×",
                check(value, limit),
                note="median of per-round ratios",
            )
        )
    for name, side, reference in (
        ("webhooks cost on import_jobs throughput (#17)", "import+webhooks", "import"),
        ("webhooks cost on ingest throughput (#17)", "ingest+webhooks", "ingest"),
    ):
        cost = (1 - per_round(side, reference)) * 100
        figures.append(
            Figure(
                name,
                round(cost, 1),
                "%",
                "≤ 10%",
                at_most(cost, 10.0),
                note="1 − (with ÷ without), median of per-round ratios; detection itself runs on both sides",
            )
        )
    return figures


def single_item(context: Context, run_state: Run, base: str, secret: str, *, scale: str) -> list[Figure]:
    """One-item status updates and pings, one request at a time, taking turns. The usage refresh
    of a POST runs once its answer is sent: the next request waits until it has finished (no stale
    mark left), so that no ping shares the server with it; how long it took is shown too."""
    from usage.models import Job, StaleMonth

    count = SINGLE_REQUESTS[scale]
    org_ids = run_state.update_org_ids
    stored = list(
        Job.objects.filter(organisation__org_id__in=org_ids, status="completed")
        .select_related("organisation", "api_key")
        .order_by("pk")[:count]
    )
    bodies = [
        json.dumps(
            {
                "jobs": [
                    {
                        "org_id": job.organisation.org_id,
                        "external_id": job.external_id,
                        "api_key": job.api_key.name if job.api_key_id else None,
                        "created_at": job.created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "language": job.language,
                        "audio_duration_seconds": job.audio_duration_seconds,
                        "status": "processing",
                        "has_transcript": job.has_transcript,
                        "has_lrc": job.has_lrc,
                        "transcription_tokens": job.transcription_tokens,
                        "note_tokens": job.note_tokens,
                    }
                ]
            }
        ).encode()
        for job in stored
    ]
    ping_key = run_state.api_key.plaintext
    for _ in range(5):  # warm-up
        _request(base, "GET", "/api/v1/ping", body=None, key=ping_key)
    ping_ms, post_ms, refresh_ms = [], [], []
    for job, body in zip(stored, bodies, strict=True):
        started = time.perf_counter()
        status, answer = _request(base, "GET", "/api/v1/ping", body=None, key=ping_key)
        ping_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"ping answered {status}: {answer[:200]!r}")
        started = time.perf_counter()
        status, answer = _request(base, "POST", "/api/v1/ingest/jobs", body=body, key=secret)
        post_ms.append((time.perf_counter() - started) * 1000)
        if status != 200 or json.loads(answer)["updated"] != 1:
            raise RuntimeError(f"one-item POST answered {status}: {answer[:200]!r}")
        while StaleMonth.objects.filter(organisation_id=job.organisation_id).exists():
            if time.perf_counter() - started > 30:
                raise RuntimeError("the usage refresh after a one-item POST did not finish in 30 s")
            time.sleep(0.002)
        refresh_ms.append((time.perf_counter() - started) * 1000 - post_ms[-1])
    ratio = median(post_ms) / median(ping_ms)
    return [
        Figure(
            "GET /api/v1/ping, one request at a time (median)",
            round(median(ping_ms), 2),
            "ms",
            note=f"n={len(ping_ms)}, min {min(ping_ms):.1f} ms, max {max(ping_ms):.1f} ms; a customer key",
        ),
        Figure(
            "POST /api/v1/ingest/jobs, 1 item: a status update (median)",
            round(median(post_ms), 2),
            "ms",
            note=f"n={len(post_ms)}, min {min(post_ms):.1f} ms, max {max(post_ms):.1f} ms; each a different "
            f"job of an organisation with {JOBS_PER_ORG:,} jobs that month, answered updated",
        ),
        Figure(
            "usage refresh after the 1-item answer (median)",
            round(median(refresh_ms), 2),
            "ms",
            note="from the answer to the stale marks resolved (polled every 2 ms), before the next request; "
            "a read in that window resolves the marks itself",
        ),
        Figure(
            "1-item POST ÷ ping, median latency (#14)",
            round(ratio, 2),
            "×",
            "≤ 3.0×",
            at_most(ratio, 3.0),
            note="taking turns, one request at a time",
        ),
    ]


# --- Deliveries ---------------------------------------------------------------------------------


def start_receiver(context: Context) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([context.python, "-c", RECEIVER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/hook"


def start_worker(context: Context, environment: dict[str, str]) -> subprocess.Popen:
    celery = str(Path(context.python).parent / "celery")
    return subprocess.Popen(
        [
            celery,
            "-A",
            "portal",
            "worker",
            "--pool=prefork",
            f"--concurrency={WORKER_PROCESSES}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _queue_purge(broker_url: str) -> None:
    """Remove the messages the run left on the broker (the default queue, ``celery``)."""
    import redis

    redis.Redis.from_url(broker_url).delete("celery")


def _broker_use(url: str) -> None:
    """Make this process queue its tasks on ``url`` (the worker's broker)."""
    from portal.celery import app

    app.conf.broker_url = url
    app._pool = None  # the connection pool is made from broker_url when first used


def deliveries_make(run_state: Run, endpoint, count: int, label: str) -> list[int]:
    """``count`` events of the endpoint's organisation with one pending delivery each."""
    from django.utils import timezone

    from webhooks.models import Delivery, Event, EventType

    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(
            organisation_id=endpoint.organisation_id,
            type=EventType.WEBHOOK_TEST,
            key=f"bench.delivery:{run_state.tag}:{label}:{index}",
            data={
                "org_id": endpoint.organisation.org_id,
                "month": "2025-01",
                "final_cost": "500.41230",
                "n": index,
            },
        )
        for index in range(count)
    )
    deliveries = Delivery.objects.bulk_create(
        Delivery(event=event, endpoint=endpoint, next_attempt_at=now) for event in events
    )
    return [delivery.pk for delivery in deliveries]


def drain(delivery_ids: list[int], *, timeout: float = 600) -> float:
    """Seconds from queueing the deliveries to every one of them delivered."""
    from webhooks.models import Delivery
    from webhooks.services import deliveries_enqueue

    started = time.perf_counter()
    deliveries_enqueue(delivery_ids=delivery_ids)
    while True:
        pending = Delivery.objects.filter(pk__in=delivery_ids).exclude(state=Delivery.State.DELIVERED).count()
        if not pending:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{pending} deliveries still pending after {timeout:.0f} s")
        time.sleep(0.05)


def plain_posts(url: str, count: int) -> float:
    """Seconds for ``count`` POSTs of a delivery-sized signed body, one after the other, from one
    ``httpx.Client`` (no set-up per request; the receiver closes each connection, as it would a
    delivery's)."""
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)

    body = json.dumps(
        {"type": "webhook.test", "timestamp": "2025-01-01T00:00:00Z", "data": {"org_id": "org_x", "n": 1}}
    ).encode()
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_x",
        "webhook-timestamp": "0",
        "webhook-signature": "v1,x",
    }
    with httpx.Client(timeout=10, trust_env=False) as client:
        started = time.perf_counter()
        for _ in range(count):
            response = client.post(url, content=body, headers=headers)
            if response.status_code != 204:
                raise RuntimeError(f"the receiver answered {response.status_code}")
        return time.perf_counter() - started


def deliveries(context: Context, run_state: Run, environment, receiver_url: str) -> list[Figure]:
    from django.conf import settings
    from django.test import override_settings

    from accounts.services import organisation_create
    from webhooks.services import webhook_endpoint_create

    organisation = organisation_create(name="bench deliveries", org_id=f"org_bi{run_state.tag}dl")
    run_state.org_pks.append(organisation.pk)
    with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=True):
        endpoint = webhook_endpoint_create(organisation=organisation, url=receiver_url).endpoint
    broker = environment["CELERY_BROKER_URL"]
    worker = start_worker(context, environment)
    plain, drained = [], []
    try:
        _broker_use(broker)
        drain(deliveries_make(run_state, endpoint, 20, "warm-up"), timeout=120)  # the worker is up and warm
        for round_index in range(context.repeat):
            log(f"  deliveries round {round_index + 1} of {context.repeat}")
            plain.append(plain_posts(receiver_url, DELIVERIES))
            drained.append(drain(deliveries_make(run_state, endpoint, DELIVERIES, f"r{round_index}")))
    finally:
        _broker_use(settings.CELERY_BROKER_URL)
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    ratio = median([d / p for d, p in zip(drained, plain, strict=True)])
    return [
        Figure(
            f"{DELIVERIES:,} plain POSTs to a local receiver, one process",
            round(median(plain), 3),
            "s",
            note=f"one httpx.Client, one POST after the other (n={len(plain)}, {min(plain):.2f}–{max(plain):.2f} s); "
            "ThreadingHTTPServer answering 204 in a child process",
        ),
        Figure(
            f"{DELIVERIES:,} queued deliveries drained by a Celery worker",
            round(median(drained), 3),
            "s",
            note=f"webhooks.tasks.deliver, a worker of {WORKER_PROCESSES} processes (Celery's default: one a core), "
            "from the first apply_async to "
            f"all delivered (n={len(drained)}, {min(drained):.2f}–{max(drained):.2f} s)",
        ),
        Figure(
            "delivery drain ÷ plain POSTs, time (#17)",
            round(ratio, 2),
            "×",
            "≤ 2.0×",
            at_most(ratio, 2.0),
            note="median of per-round ratios",
        ),
    ]
