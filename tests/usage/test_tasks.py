import datetime as dt
import time

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from portal.celery import app
from tests.factories import at, make_job
from usage.engine import locks
from usage.engine.locks import task_lock, task_lock_claim, task_lock_release
from usage.models import MonthlyUsage, TaskLock
from usage.tasks import recompute_organisation_usage, recompute_usage


@pytest.fixture
def eager():
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_a_lease_is_exclusive_until_released_or_expired(db):
    token = task_lock_claim(name="job", ttl=dt.timedelta(minutes=5))
    assert token
    assert task_lock_claim(name="job", ttl=dt.timedelta(minutes=5)) is None
    task_lock_release(name="job", token=token)
    assert task_lock_claim(name="job", ttl=dt.timedelta(seconds=-1))  # claimed, already expired
    assert task_lock_claim(name="job", ttl=dt.timedelta(minutes=5))


def test_the_dispatcher_fans_out_per_organisation_and_repairs(eager, acme, globex, add_jobs):
    add_jobs([make_job(acme, created_at=at(2025, 1, 2)), make_job(globex, created_at=at(2025, 1, 3))])
    MonthlyUsage.objects.all().delete()
    assert recompute_usage.apply().get() == 2
    assert MonthlyUsage.objects.count() == 2
    assert recompute_organisation_usage.apply(args=[acme.pk]).get() == 0


def test_a_second_run_while_one_is_going_does_no_work(eager, acme, add_jobs):
    add_jobs([make_job(acme, created_at=at(2025, 1, 2))])
    MonthlyUsage.objects.all().delete()
    with task_lock(name="recompute_usage:dispatch", ttl=dt.timedelta(minutes=1)) as claimed:
        assert claimed
        assert recompute_usage.apply().get() == 0
    with task_lock(name=f"recompute_usage:org:{acme.pk}", ttl=dt.timedelta(minutes=1)):
        assert recompute_organisation_usage.apply(args=[acme.pk]).get() == 0
    assert MonthlyUsage.objects.count() == 0
    assert recompute_organisation_usage.apply(args=[acme.pk]).get() == 1


def test_the_organisation_task_retries_database_errors_with_backoff():
    options = recompute_organisation_usage
    assert options.acks_late and options.max_retries and options.retry_backoff
    assert options.soft_time_limit < options.time_limit
    assert any(
        issubclass(error, Exception) and error.__name__ == "OperationalError"
        for error in options.autoretry_for
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="leases die with connections on PostgreSQL")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/test_faults.py
def test_a_lease_whose_holder_died_is_taken_over_at_once():
    """A holder's connection holds the lease's advisory lock: while it lives the lease is taken;
    once it is gone (a worker killed), the next claimant takes the lease over before it expires."""
    from tests.factories import test_database_url

    holder = psycopg.connect(test_database_url(), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s, %s)", [locks._LEASE_LOCK, locks._lease_key("dead holder")])
    TaskLock.objects.create(
        name="dead holder", locked_until=timezone.now() + dt.timedelta(minutes=30), owner="dead"
    )
    assert task_lock_claim(name="dead holder", ttl=dt.timedelta(minutes=5)) is None  # holder alive
    backend = holder.info.backend_pid
    holder.close()
    with connection.cursor() as cursor:  # the server process ends a moment after the client's
        for _ in range(100):
            cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend])
            if not cursor.fetchone():
                break
            time.sleep(0.05)
    token = task_lock_claim(name="dead holder", ttl=dt.timedelta(minutes=5))
    assert token and TaskLock.objects.get(name="dead holder").owner == token
    task_lock_release(name="dead holder", token=token)
