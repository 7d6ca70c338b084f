"""The API's hot path when things break: Redis down, a flush or a web process killed, a dead
database connection. Each test that needs Redis runs its own throwaway ``redis-server`` on a free
port (never the shared one), and kills and restarts it as it needs."""

import concurrent.futures
import datetime as dt
import logging
import os
import signal
import time

import pytest
import redis
import requests
import time_machine
from django.db import connection

from portal import hot_redis
from tests.faults import RedisServer, serve, skip_or_fail
from usage import calls as usage_calls
from usage.calls import api_calls_flush
from usage.models import ApiCallCount, TaskLock


@pytest.fixture
def own_redis(settings):
    """A private Redis as the default cache for this test (and so for throttles and call counts)."""
    reason = RedisServer.available()
    if reason:
        skip_or_fail(reason)
    server = RedisServer()
    server.start()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.url}
    }
    try:
        yield server
    finally:
        server.kill()


def _calls(api_key) -> int:
    return sum(ApiCallCount.objects.filter(api_key=api_key).values_list("calls", flat=True))


def test_redis_down_degrades_open_and_recovers(own_redis, acme_key, bearer, settings, caplog, monkeypatch):
    """Issue 12: no 500 while Redis is down; throttling is back (and counts exact) once it returns."""
    settings.API_THROTTLE_RATE = "3/min"
    monkeypatch.setattr(hot_redis, "_warned_at", {})
    ping = lambda: bearer(acme_key.plaintext, "/api/v1/ping").status_code  # noqa: E731
    moment = dt.datetime(2025, 3, 15, 12, 0, 5, tzinfo=dt.UTC)

    with time_machine.travel(moment, tick=False):
        before = [ping() for _ in range(2)]
        api_calls_flush()  # a Redis crash loses what is not flushed (see README); not the point here
        own_redis.kill()
        with caplog.at_level(logging.WARNING):
            down = [ping() for _ in range(5)]
            unknown = bearer("upk_AAAAAAAAAAAA_" + "A" * 43, "/api/v1/ping").status_code
            usage = bearer(acme_key.plaintext, "/api/v1/usage")
        warnings = [record for record in caplog.records if "Redis unavailable" in record.getMessage()]
        own_redis.start()
        # The first request may meet a pooled connection to the dead server: it degrades too.
        back = [ping() for _ in range(5)]

    assert before == [200, 200]
    assert down == [200] * 5  # throttle open (3/min would refuse them)
    assert unknown == 401
    assert usage.status_code == 200
    assert usage.json()["api_calls"] == 8  # counted in the database meanwhile, this read included
    # One warning per concern and minute, not one per request.
    assert 1 <= len(warnings) <= 3
    assert back[:3] == [200] * 3 and back[-1] == 429  # the new Redis counts from zero: 3/min again
    api_calls_flush()
    assert _calls(acme_key.api_key) == 13  # 429s are calls too


def test_a_usage_read_while_redis_is_down_is_built_again(own_redis, acme_key, bearer, monkeypatch):
    """The cached body is in Redis: with Redis down the body is built again, never a 500."""
    monkeypatch.setattr(hot_redis, "_warned_at", {})
    cached = bearer(acme_key.plaintext, "/usage")
    own_redis.kill()

    down = bearer(acme_key.plaintext, "/usage")

    assert cached.status_code == down.status_code == 200
    assert down.content == cached.content


def _pending(client) -> int:
    return sum(
        int(value)
        for key in client.keys(f"{usage_calls.PREFIX}pending:*")
        for value in client.hgetall(key).values()
    )


def test_a_flush_killed_before_its_commit_loses_nothing(own_redis, acme_key, bearer, monkeypatch):
    for _ in range(4):
        assert bearer(acme_key.plaintext, "/api/v1/ping").status_code == 200

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-flush")

    monkeypatch.setattr(usage_calls, "_marker_insert", lambda token: crash())
    with pytest.raises(KeyboardInterrupt):
        api_calls_flush()
    monkeypatch.undo()

    client = redis.Redis.from_url(own_redis.url)
    assert client.scard(usage_calls.INFLIGHTS) == 1  # moved to a batch, not applied
    assert _calls(acme_key.api_key) == 0
    assert bearer(acme_key.plaintext, "/api/v1/usage").json()["api_calls"] == 5  # the batch, and itself
    assert api_calls_flush() == 2  # the batch left over, and the read's own count
    assert client.scard(usage_calls.INFLIGHTS) == 0
    assert _calls(acme_key.api_key) == 5


def test_a_flush_killed_after_its_commit_applies_nothing_twice(own_redis, acme_key, bearer, monkeypatch):
    for _ in range(3):
        bearer(acme_key.plaintext, "/api/v1/ping")

    class Crashing:
        def __init__(self, *args, **kwargs):
            raise KeyboardInterrupt("killed between the commit and the Redis delete")

    client = usage_calls.redis_client()
    monkeypatch.setattr(type(client), "pipeline", lambda self, **kwargs: Crashing())
    with pytest.raises(KeyboardInterrupt):
        api_calls_flush()
    monkeypatch.undo()

    assert _calls(acme_key.api_key) == 3  # committed
    assert redis.Redis.from_url(own_redis.url).scard(usage_calls.INFLIGHTS) == 1  # still in flight
    assert api_calls_flush(clean_markers=True) == 1  # finds the marker: only forgets the batch
    assert _calls(acme_key.api_key) == 3
    assert bearer(acme_key.plaintext, "/api/v1/usage").json()["api_calls"] == 4
    assert TaskLock.objects.filter(name__startswith=usage_calls.MARKER_PREFIX).count() == 1  # kept a while


def _database_url() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    return f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"


@pytest.mark.live
@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "database"])
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_web_server_killed_while_serving_loses_no_answered_call(request, acme_key, with_redis, settings):
    """SIGKILL gunicorn (master and workers) under load: every answered call is counted.

    A request in flight at the kill may be counted without being answered (the count is taken
    before the response), never the other way round.
    """
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "LOG_LEVEL": "ERROR",
        "API_THROTTLE_RATE": "1000000/min",
    }
    if with_redis:
        request.getfixturevalue("own_redis")
        environment["CACHE_URL"] = settings.CACHES["default"]["LOCATION"]
    else:
        environment["CACHE_URL"] = "locmemcache://kill-test"
    server, url = serve(environment)
    header = {"Authorization": f"Bearer {acme_key.plaintext}"}

    statuses: set = set()

    def hammer() -> tuple[int, int]:
        answered = failed = 0
        with requests.Session() as session:
            for _ in range(400):
                try:
                    response = session.get(f"{url}/api/v1/ping", headers=header, timeout=10)
                    statuses.add(response.status_code)
                    if response.status_code == 200:
                        answered += 1
                except requests.RequestException as error:
                    statuses.add(type(error).__name__ + str(error)[:200])
                    failed += 1
                    if failed > 3:
                        break
        return answered, failed

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(hammer) for _ in range(6)]
            time.sleep(2.0)
            os.killpg(server.pid, signal.SIGKILL)
            results = [future.result() for future in futures]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    answered = sum(result[0] for result in results)
    in_flight = 6  # at most one request per client thread when the server died

    api_calls_flush()
    counted = _calls(acme_key.api_key)
    assert answered > 20, statuses
    assert answered <= counted <= answered + in_flight


@pytest.mark.live
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_dead_database_connection_is_replaced_without_health_checks(acme_key, settings):
    """With CONN_HEALTH_CHECKS off, a connection killed under a worker fails at most the request
    that meets it; Django closes it at that request's end and the next one reconnects."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL to kill a server connection")
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "LOG_LEVEL": "CRITICAL",
        "CACHE_URL": "locmemcache://dead-connection",
        "CONN_MAX_AGE": "600",
    }
    server, url = serve(environment, workers=1)
    header = {"Authorization": f"Bearer {acme_key.plaintext}"}
    try:
        assert [
            requests.get(f"{url}/api/v1/ping", headers=header, timeout=10).status_code for _ in range(3)
        ] == [200] * 3
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        statuses = [
            requests.get(f"{url}/api/v1/ping", headers=header, timeout=10).status_code for _ in range(6)
        ]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()

    assert statuses.count(500) <= 2  # at most one per worker
    assert statuses[-3:] == [200] * 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_counts_stay_exact_while_flushes_race_each_other_and_the_writers(own_redis, acme_key):
    """4 threads count 100 calls each while 3 threads flush in a loop: 400, each applied once."""
    from django.db import connections

    from usage.calls import api_call_count, api_calls_total

    api_key = acme_key.api_key
    now = dt.datetime(2025, 3, 15, tzinfo=dt.UTC)
    done = False

    def count() -> None:
        try:
            for _ in range(100):
                api_call_count(api_key_id=api_key.pk, organisation_id=api_key.organisation_id, now=now)
        finally:
            connections.close_all()

    def flush() -> list[int]:
        totals = []
        try:
            while not done:
                api_calls_flush()
                totals.append(api_calls_total(organisation_id=api_key.organisation_id))
        finally:
            connections.close_all()
        return totals

    with concurrent.futures.ThreadPoolExecutor(max_workers=7) as pool:
        flushers = [pool.submit(flush) for _ in range(3)]
        for writer in [pool.submit(count) for _ in range(4)]:
            writer.result()
        done = True
        seen = [flusher.result() for flusher in flushers]

    api_calls_flush()
    assert _calls(api_key) == 400
    assert api_calls_total(organisation_id=api_key.organisation_id) == 400
    # A reader never sees a count twice nor loses one it saw: its totals only grow, within 0..400.
    for totals in seen:
        assert totals and all(0 <= a <= b <= 400 for a, b in zip(totals, totals[1:], strict=False))
