"""The fault suite (issue 12): things are killed for real and the portal must stay exact.

- PostgreSQL restarted under API load (its own throwaway cluster): 503s during the outage, the
  same gunicorn processes serve again afterwards, and every answered call is counted exactly.
- ``import_jobs`` killed with SIGKILL halfway through a large file: what it committed is
  consistent and fresh; rerunning the file gives exactly what a clean import gives.
- A Celery worker killed with SIGKILL in the middle of a recompute: the next run is not blocked
  by the dead worker's lease and repairs everything.

They run in CI's PostgreSQL pass (``DATABASE_URL`` on PostgreSQL) and are skipped on SQLite,
where there is no server to kill. A fault test that cannot start what it needs (``initdb``,
``redis-server``) is skipped on a laptop and fails under ``CI=true``. Run them alone with::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_portal CACHE_URL=redis://127.0.0.1:6379/1 \\
        CELERY_BROKER_URL=redis://127.0.0.1:6379/1 .venv/bin/pytest -m faults tests/test_faults.py

The tests that commit to the test database use ``serialized_rollback``: a plain transactional
test's flush recreates the migrations' rows (the staff groups), which the serialized tests that
run after it (``tests/usage``) would then insert a second time.

(Long because each fault needs its own private service, load and checks of exactness.)
"""

import concurrent.futures
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg
import pytest
import requests
from django.db import connection

from tests.faults import ROOT, PostgresCluster, RedisServer, celery_worker, serve, skip_or_fail, worker_pids

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the fault suite runs in the PostgreSQL pass (DATABASE_URL=postgres://…)",
    ),
]


def _manage(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cluster():
    """A throwaway PostgreSQL cluster, never the shared server: this test stops and starts it."""
    server = PostgresCluster()
    reason = server.unavailable()
    if reason:
        skip_or_fail(reason)
    server.create()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def private_redis():
    reason = RedisServer.available()
    if reason:
        skip_or_fail(reason)
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


_SETUP = """
import json
from django.test import Client
from accounts.models import Membership, User
from accounts.services import api_key_create, membership_add, organisation_create
organisation = organisation_create(name="Fault Co", org_id="org_fault")
ping_key = api_key_create(organisation=organisation, name="ping key")
usage_key = api_key_create(organisation=organisation, name="usage key")
user = User.objects.create_user("fay", "fay@fault.test", "fault-pass-123")
membership_add(organisation=organisation, user=user, role=Membership.Role.OWNER)
client = Client()
client.force_login(user)
print(json.dumps({
    "ping": [ping_key.api_key.pk, ping_key.plaintext],
    "usage": [usage_key.api_key.pk, usage_key.plaintext],
    "session": client.cookies["sessionid"].value,
}))
"""

_FLUSH = "from usage.calls import api_calls_flush; api_calls_flush()"


def test_postgresql_restarted_under_api_load(cluster, private_redis):
    """Stop the database (``pg_ctl stop -m immediate``: a crash) under concurrent API load, then
    start it again.

    During the outage the API answers JSON 503s and a page a plain 503 page; afterwards the same
    gunicorn processes answer 200 again. Counting is exact: Redis is the cache, so a call is
    counted in Redis right after its key is looked up, and nothing of ``/api/v1/ping`` touches the
    database after that: every ping answered 200 is one count and every 503 (failed at the key
    lookup) none. (With the local-memory cache the count is a database write before the response,
    and a commit whose answer is lost in the crash is a call counted but answered 503.) A
    ``/usage`` read touches the database after counting (the counts' flush, the report), so its
    503s may or may not be counted: 200s <= count <= 200s + 503s.
    """
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE portal")
    environment = {
        **os.environ,
        "DATABASE_URL": cluster.url("portal"),
        "CACHE_URL": private_redis.url,
        "CELERY_BROKER_URL": "memory://",
        "API_THROTTLE_RATE": "1000000/min",
        "LOG_LEVEL": "CRITICAL",
        "DEBUG": "True",  # a missed exception would show a traceback page: the test looks for one
        "CONN_MAX_AGE": "600",
    }
    migrated = _manage("migrate", "--noinput", env=environment)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    made = _manage("shell", "-c", _SETUP, env=environment)
    assert made.returncode == 0, made.stderr[-2000:]
    setup = json.loads(made.stdout.strip().splitlines()[-1])
    (ping_id, ping_key), (usage_id, usage_key) = setup["ping"], setup["usage"]

    server, url = serve(environment, workers=2)
    try:
        pids_before = (server.pid, worker_pids(server))
        statuses: dict[str, Counter] = {"ping": Counter(), "usage": Counter()}
        lock = threading.Lock()
        done = threading.Event()

        def drive(kind: str, path: str, key: str) -> None:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {key}"
                while not done.is_set():
                    try:
                        status = session.get(url + path, timeout=15).status_code
                    except requests.RequestException as error:
                        status = type(error).__name__
                    with lock:
                        statuses[kind][status] += 1

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            drivers = [
                pool.submit(drive, "ping", "/api/v1/ping", ping_key),
                pool.submit(drive, "ping", "/api/v1/ping", ping_key),
                pool.submit(drive, "usage", "/usage?start_month=2025-01&end_month=2025-03", usage_key),
                pool.submit(drive, "usage", "/api/v1/usage", usage_key),
            ]
            time.sleep(2)
            cluster.stop("immediate")
            down_ping = requests.get(
                f"{url}/api/v1/ping", headers={"Authorization": f"Bearer {ping_key}"}, timeout=15
            )
            down_usage = requests.get(
                f"{url}/usage", headers={"Authorization": f"Bearer {usage_key}"}, timeout=15
            )
            down_page = requests.get(f"{url}/dashboard/", cookies={"sessionid": setup["session"]}, timeout=15)
            time.sleep(2)
            cluster.start()
            # Each worker's kept connection died with the server: at most one request per worker
            # meets it (503) before the worker reconnects.
            deadline = time.monotonic() + 60
            recovered = []
            while time.monotonic() < deadline and recovered[-20:] != [200] * 20:
                recovered.append(
                    requests.get(
                        f"{url}/api/v1/ping", headers={"Authorization": f"Bearer {ping_key}"}, timeout=15
                    ).status_code
                )
            time.sleep(1)
            done.set()
            for driver in drivers:
                driver.result()
        pids_after = (server.pid, worker_pids(server))
        page_after = requests.get(f"{url}/dashboard/", cookies={"sessionid": setup["session"]}, timeout=15)
        reported = requests.get(
            f"{url}/api/v1/usage", headers={"Authorization": f"Bearer {usage_key}"}, timeout=15
        )
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()

    assert down_ping.status_code == 503 and down_ping.headers["Content-Type"] == "application/json"
    assert down_ping.json() == {"detail": down_ping.json()["detail"]} and down_ping.headers["Retry-After"]
    assert down_usage.status_code == 503 and "detail" in down_usage.json()
    assert down_page.status_code == 503 and down_page.headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in down_page.text and "Traceback" not in down_page.text
    assert recovered[-20:] == [200] * 20, recovered
    assert pids_after == pids_before  # the same master and workers: nothing was restarted
    assert page_after.status_code == 200

    counted_pings = recovered.count(200) + statuses["ping"][200]
    # Only 200s and 503s: never a 500 or a dropped connection.
    for kind, seen in statuses.items():
        assert set(seen) <= {200, 503}, (kind, seen)
        assert seen[200] > 10 and seen[503] > 0, (kind, seen)
    assert set(recovered) <= {200, 503}

    flushed = _manage("shell", "-c", _FLUSH, env=environment)
    assert flushed.returncode == 0, flushed.stderr[-2000:]
    with psycopg.connect(cluster.url("portal")) as database:
        counts = dict(
            database.execute(
                "SELECT api_key_id, SUM(calls) FROM usage_apicallcount GROUP BY api_key_id"
            ).fetchall()
        )
    assert counts[ping_id] == counted_pings
    usage_answered = statuses["usage"][200] + 1  # the final read of /api/v1/usage
    usage_failed = statuses["usage"][503] + 1  # and the one read during the outage
    assert usage_answered <= counts[usage_id] <= usage_answered + usage_failed
    # What the portal reported included every count, those still in Redis too.
    assert reported.json()["api_calls"] == counts[ping_id] + counts[usage_id]


def _jobs_file(path, *, lines: int, org_ids: list[str]) -> None:
    """``lines`` distinct jobs of ``org_ids`` across 2025, in an order that mixes organisations
    and months in every write batch; a few failed ones and several languages."""
    languages = ["Hindi", "Tamil", "English", "Bengali"]
    with path.open("w") as out:
        for index in range(lines):
            month = 1 + index * 7 % 12
            second = index // 12
            out.write(
                json.dumps(
                    {
                        "org_id": org_ids[index % len(org_ids)],
                        "external_id": f"kill-{index}",
                        "api_key": "some api key" if index % 3 else None,
                        "created_at": f"2025-{month:02d}-{1 + second % 28:02d}T"
                        f"{second // 28 % 24:02d}:{second // 672 % 60:02d}:{index % 60:02d}Z",
                        "language": languages[index % len(languages)],
                        "audio_duration_seconds": 30 + index % 600,
                        "status": "failed" if index % 17 == 0 else "completed",
                        "has_transcript": True,
                        "has_lrc": index % 2 == 0,
                        "transcription_tokens": index % 1000,
                        "note_tokens": index % 333,
                    }
                )
                + "\n"
            )


def _usage_state() -> dict[str, list]:
    """Everything an import writes: the jobs with their derived columns, and every aggregate."""
    from usage.models import DailyUsage, Job, LanguageUsage, MonthlyUsage

    def rows(model) -> list:
        names = [field.attname for field in model._meta.concrete_fields if not field.primary_key]
        return sorted(model.objects.values_list(*names))

    return {
        "jobs": rows(Job),
        "monthly": rows(MonthlyUsage),
        "daily": rows(DailyUsage),
        "languages": rows(LanguageUsage),
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_import_jobs_killed_halfway_then_rerun(tmp_path):
    """SIGKILL ``import_jobs`` once some of its write batches have committed.

    What it committed is whole batches of lines (each batch is one transaction) with their stale
    marks; the first read resolves them, after which a full recompute finds nothing to correct
    (consistent and fresh). Rerunning the file then gives exactly what a clean import of it gives:
    every job once, the same derived columns, the same aggregates.
    """
    from accounts.services import api_key_create, organisation_create
    from tests.factories import test_database_url
    from usage.engine.recompute import usage_recompute
    from usage.engine.refresh import usage_refresh_organisations
    from usage.importing import WRITE_LINES
    from usage.models import DailyUsage, Job, LanguageUsage, MonthlyUsage, StaleMonth

    organisations = [organisation_create(name=f"Kill {n}", org_id=f"org_kill{n}") for n in range(3)]
    for organisation in organisations:
        api_key_create(organisation=organisation, name="some api key")
    lines = 5 * WRITE_LINES
    path = tmp_path / "jobs.jsonl"
    _jobs_file(path, lines=lines, org_ids=[organisation.org_id for organisation in organisations])
    environment = {**os.environ, "DATABASE_URL": test_database_url(), "LOG_LEVEL": "ERROR"}
    command = [sys.executable, str(ROOT / "manage.py"), "import_jobs", str(path)]

    importer = subprocess.Popen(command, cwd=ROOT, env=environment, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while Job.objects.count() < 2 * WRITE_LINES:
            assert importer.poll() is None, importer.stderr.read()
            assert time.monotonic() < deadline, "the import wrote no two batches in 5 minutes"
            time.sleep(0.05)
        importer.send_signal(signal.SIGKILL)
    finally:
        importer.kill()
        importer.wait()
    assert importer.returncode == -signal.SIGKILL

    # Its backend may still be finishing the statement it was in (then rolls it back): the
    # organisations' writers' lock, taken by the refresh below, waits for it.
    organisation_ids = [organisation.pk for organisation in organisations]
    committed = Job.objects.count()
    assert committed % WRITE_LINES == 0 and 2 * WRITE_LINES <= committed < lines  # whole batches only
    assert StaleMonth.objects.exists()  # killed before its refresh: the marks say what to redo
    usage_refresh_organisations(organisation_ids=organisation_ids)  # what the first read does
    assert Job.objects.count() == committed
    assert sorted(Job.objects.values_list("external_id", flat=True)) == sorted(
        f"kill-{index}" for index in range(committed)
    )
    fresh = _usage_state()
    checked = usage_recompute()
    assert (checked.rows_corrected, checked.jobs_retiered, checked.free_flags_fixed) == (0, 0, 0)
    assert _usage_state() == fresh
    assert sum(MonthlyUsage.objects.values_list("jobs", flat=True)) == committed

    rerun = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after_rerun = _usage_state()
    assert len(after_rerun["jobs"]) == lines
    assert not StaleMonth.objects.exists()

    # A clean import of the same file into an empty database (the organisations and keys kept).
    for model in (StaleMonth, DailyUsage, LanguageUsage, MonthlyUsage, Job):
        model.objects.all().delete()
    clean = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert _usage_state() == after_rerun
    checked = usage_recompute()
    assert (checked.rows_corrected, checked.jobs_retiered, checked.free_flags_fixed) == (0, 0, 0)


def _start_worker(tmp_path, name: str) -> tuple[subprocess.Popen, object]:
    """A real Celery worker (solo pool: the task runs in this very process) on the test database
    and the configured broker."""
    from django.conf import settings

    from tests.factories import test_database_url

    log = (tmp_path / f"{name}.log").open("w+")
    worker = celery_worker(
        name=name,
        env={
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        },
        log=log,
    )
    return worker, log


def _wait_for(condition, *, seconds: float, what: str, worker: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if worker.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"{what}: not within {seconds} s\n{log.read()[-3000:]}")
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_in_the_middle_of_a_recompute(tmp_path):
    """SIGKILL the worker while its recompute holds the organisation's lease, then run again.

    The recompute is held mid-way without mocking anything: the test holds a lock on the
    organisation's row, which the recompute needs after it has claimed its lease. Killed there,
    the worker leaves a lease that says "held for 30 minutes". The next run must not be blocked
    by it (the lease is tied to the dead worker's database connection) and repairs the
    aggregates exactly. (The killed task's own message, unacknowledged with ``acks_late``, is
    redelivered by the broker after its visibility timeout; that run finds nothing to do.)
    """
    from django.conf import settings
    from django.utils import timezone

    from accounts.services import api_key_create, organisation_create
    from tests.factories import at, make_job, test_database_url
    from tests.usage.test_worker import sender_for
    from usage.engine.refresh import usage_refresh
    from usage.models import MonthlyUsage, TaskLock
    from usage.services import jobs_upsert

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        skip_or_fail("needs a broker server (CELERY_BROKER_URL=redis://…), as CI's PostgreSQL pass has")
    organisation = organisation_create(name="Killed Co", org_id="org_killed")
    key = api_key_create(organisation=organisation, name="k").api_key
    jobs_upsert(
        jobs=[
            make_job(organisation, created_at=at(2025, 1 + day % 3, 1 + day % 28), api_key=key)
            for day in range(60)
        ]
    )
    usage_refresh(organisation_id=organisation.pk)
    expected = sorted(MonthlyUsage.objects.values_list("month", "tier", "is_free", "jobs"))
    MonthlyUsage.objects.all().delete()
    lease = f"recompute_usage:org:{organisation.pk}"
    sender = sender_for(None)

    holder = psycopg.connect(test_database_url())  # in a transaction: holds its row lock
    monitor = psycopg.connect(test_database_url(), autocommit=True)  # fresh statistics each query
    worker, log = _start_worker(tmp_path, "killed")
    try:
        holder.execute("SELECT 1 FROM accounts_organisation WHERE id = %s FOR UPDATE", [organisation.pk])
        sender.send_task("usage.tasks.recompute_organisation_usage", args=[organisation.pk])

        def blocked_backend() -> int | None:
            found = monitor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE %s",
                ["%accounts_organisation%"],
            ).fetchone()
            return found[0] if found else None

        _wait_for(
            lambda: blocked_backend() is not None,
            seconds=90,
            what="the recompute did not reach the organisation's row",
            worker=worker,
            log=log,
        )
        backend = blocked_backend()
        assert TaskLock.objects.get(name=lease).locked_until > timezone.now()
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        holder.rollback()  # the dead worker's server process gets the row, finds its client gone

    def backend_gone() -> bool:
        return not monitor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone()

    deadline = time.monotonic() + 30
    while not backend_gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    holder.close()
    assert backend_gone()
    monitor.close()
    assert MonthlyUsage.objects.count() == 0  # the killed run repaired nothing
    assert TaskLock.objects.get(name=lease).locked_until > timezone.now() + dt.timedelta(minutes=20)

    worker, log = _start_worker(tmp_path, "next")
    try:
        sender.send_task("usage.tasks.recompute_usage")  # the next (nightly) run
        _wait_for(
            lambda: sorted(MonthlyUsage.objects.values_list("month", "tier", "is_free", "jobs")) == expected,
            seconds=90,
            what="the next run did not repair the aggregates",
            worker=worker,
            log=log,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.seek(0)
        output = log.read()
    assert "being recomputed already" not in output, output
    assert TaskLock.objects.get(name=lease).locked_until <= timezone.now()  # released by the next run
