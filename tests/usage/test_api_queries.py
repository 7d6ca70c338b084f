"""Queries per request are few and do not grow with jobs, keys or months."""

import datetime as dt

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import api_key_create, api_key_revoke, organisation_create
from portal.hot_redis import redis_client

# With Redis as the cache a call is counted there (no query); the monthly report first flushes
# the counts (savepoint, batch marker, existing keys, upsert, release: see usage.calls), the
# all-time total reads them in place (the call totals statement also checks batch markers).
COUNT = 0 if redis_client() is not None else 1
FLUSH = 5 if redis_client() is not None else 0
# The key check also reads whether the organisation has stale marks (none here), so no read
# looks for them in a query of its own.
# key check, call count, plan with its tiers, month rows, key names, languages, call totals,
# all-time job count for free_jobs_left (a body not cached yet)
MONTHLY_QUERIES = 7 + COUNT + FLUSH
# key check, call count (the body is cached under the usage version)
MONTHLY_CACHED_QUERIES = 1 + COUNT
# key check, call count, language rows, call totals
ALL_TIME_QUERIES = 3 + COUNT
# key check, call count
PING_QUERIES = 1 + COUNT


def _organisation(name: str, *, keys: int, months: int, jobs_per_month: int, job, add_jobs):
    organisation = organisation_create(name=name, org_id=f"org_{name.lower()}", free_job_allowance=3)
    created = [api_key_create(organisation=organisation, name=f"key {index}") for index in range(keys)]
    jobs = []
    for month in range(months):
        moment = dt.datetime(2024 + (3 + month) // 12, (3 + month) % 12 + 1, 2, tzinfo=dt.UTC)
        for index in range(jobs_per_month):
            api_key = created[index % (keys + 1)].api_key if index % (keys + 1) < keys else None
            jobs.append(
                job(
                    organisation,
                    api_key=api_key,
                    created_at=moment + dt.timedelta(minutes=index),
                    language=["Hindi", "Tamil", "Telugu"][index % 3],
                )
            )
    add_jobs(jobs)
    if keys > 1:
        api_key_revoke(api_key=created[-1].api_key)
    return created[0]


@pytest.fixture
def small(job, add_jobs):
    return _organisation("Small", keys=1, months=1, jobs_per_month=1, job=job, add_jobs=add_jobs)


@pytest.fixture
def large(job, add_jobs):
    return _organisation("Large", keys=4, months=12, jobs_per_month=60, job=job, add_jobs=add_jobs)


def _queries(bearer, key, path: str, params: dict, *, cached: bool = False) -> int:
    bearer(key.plaintext, path, params)  # the first request also records the key's last use
    if not cached:
        cache.clear()
    with CaptureQueriesContext(connection) as captured:
        response = bearer(key.plaintext, path, params)
    assert response.status_code == 200
    return len(captured.captured_queries)


PERIOD = {"start_month": "2024-04", "end_month": "2025-03"}


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/usage", PERIOD, MONTHLY_QUERIES),
        ("/usage", {"start_month": "2015-04"}, MONTHLY_QUERIES),
        ("/api/v1/usage", {}, ALL_TIME_QUERIES),
        ("/api/v1/ping", {}, PING_QUERIES),
    ],
)
def test_query_count_is_the_same_for_small_and_large_data(
    small, large, bearer, march_2025, path, params, expected
):
    assert _queries(bearer, small, path, params) == expected
    assert _queries(bearer, large, path, params) == expected


@pytest.mark.parametrize("params", [PERIOD, {"start_month": "2015-04"}])
def test_a_cached_body_costs_the_key_check_alone_whatever_the_data(small, large, bearer, march_2025, params):
    assert _queries(bearer, small, "/usage", params, cached=True) == MONTHLY_CACHED_QUERIES
    assert _queries(bearer, large, "/usage", params, cached=True) == MONTHLY_CACHED_QUERIES


def test_the_large_data_set_is_really_large(large, bearer, march_2025):
    body = bearer(large.plaintext, "/usage", PERIOD).json()

    assert body["totals"]["jobs"] == 720
    assert len(body["monthly_breakdown"]) == 12
    assert len(body["api_keys"]) == 4


def test_query_count_is_bounded_with_django_assert_num_queries(
    small, bearer, march_2025, django_assert_num_queries
):
    bearer(small.plaintext, "/usage", PERIOD)
    cache.clear()

    with django_assert_num_queries(MONTHLY_QUERIES):
        bearer(small.plaintext, "/usage", PERIOD)


def test_with_redis_a_ping_and_a_cached_usage_read_are_one_redis_round_trip_each(
    small, bearer, march_2025, monkeypatch
):
    if redis_client() is None:
        pytest.skip("the cache is not Redis (set CACHE_URL=redis://…)")
    sent = []
    send = redis.Connection.send_packed_command

    def recording(connection, command, *args, **kwargs):
        sent.append(b"".join(command).split(b"\r\n")[2].decode())  # the command's name
        return send(connection, command, *args, **kwargs)

    monkeypatch.setattr(redis.Connection, "send_packed_command", recording)
    first = bearer(small.plaintext, "/usage", PERIOD)  # builds and stores the body
    sent.clear()

    ping = bearer(small.plaintext, "/api/v1/ping")
    after_ping = list(sent)
    cached = bearer(small.plaintext, "/usage", PERIOD)

    assert ping.status_code == cached.status_code == 200
    assert after_ping == ["EVALSHA"]
    assert sent == ["EVALSHA", "EVALSHA"]
    assert cached.content == first.content
