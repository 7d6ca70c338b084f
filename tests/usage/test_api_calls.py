"""API calls: every request with a valid key of an active organisation counts once, whatever the answer."""

import concurrent.futures
import datetime as dt

import pytest
import requests
import time_machine

from accounts.services import api_key_create, api_key_revoke
from portal.hot_redis import redis_client
from usage.api.calls import api_call_record
from usage.calls import api_calls_flush
from usage.models import ApiCallCount


def calls(api_key) -> dict[str, int]:
    api_calls_flush()  # with Redis, counts reach the table at a flush
    return {
        f"{month:%Y-%m}": count
        for month, count in ApiCallCount.objects.filter(api_key=api_key).values_list("month", "calls")
    }


def test_the_counter_adds_one_per_call_per_key_and_month(acme, acme_key):
    other = api_key_create(organisation=acme, name="other").api_key
    january = dt.datetime(2025, 1, 31, 23, 59, tzinfo=dt.UTC)
    february = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)

    for _ in range(3):
        api_call_record(api_key=acme_key.api_key, now=january)
    api_call_record(api_key=acme_key.api_key, now=february)
    api_call_record(api_key=other, now=february)

    assert calls(acme_key.api_key) == {"2025-01": 3, "2025-02": 1}
    assert calls(other) == {"2025-02": 1}
    assert set(ApiCallCount.objects.values_list("organisation_id", flat=True)) == {acme.pk}


def test_the_counter_is_one_statement_or_none_with_redis(acme_key, django_assert_num_queries):
    statements = 0 if redis_client() is not None else 1
    with django_assert_num_queries(statements) as captured:
        api_call_record(api_key=acme_key.api_key, now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    if statements:
        assert "ON CONFLICT" in captured.captured_queries[0]["sql"]
    assert calls(acme_key.api_key) == {"2025-01": 1}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/usage", 200),
        ("get", "/api/v1/usage", 200),
        ("get", "/api/v1/ping", 200),
        ("head", "/api/v1/usage", 200),
        ("options", "/usage", 200),
        ("get", "/usage?start_month=nope", 400),
        ("get", "/api/v1/nothing-here", 404),
        ("get", "/api/v2/usage", 404),
        ("delete", "/api/", 404),
        ("get", "/usage/", 404),
        ("post", "/usage", 405),
        ("put", "/api/v1/usage", 405),
        ("delete", "/api/v1/ping", 405),
    ],
)
def test_every_answer_to_a_valid_key_is_one_call(client, acme_key, method, path, status):
    response = getattr(client, method)(path, headers={"Authorization": f"Bearer {acme_key.plaintext}"})

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert sum(calls(acme_key.api_key).values()) == 1


def test_a_throttled_request_is_a_call(client, acme_key, settings):
    settings.API_THROTTLE_RATE = "1/min"
    header = {"Authorization": f"Bearer {acme_key.plaintext}"}

    with time_machine.travel(dt.datetime(2025, 3, 15, 12, 0, 1, tzinfo=dt.UTC), tick=False):
        statuses = [client.get("/api/v1/ping", headers=header).status_code for _ in range(3)]

    assert statuses == [200, 429, 429]
    assert calls(acme_key.api_key) == {"2025-03": 3}


def test_the_reading_request_counts_itself(acme_key, bearer):
    counts = [bearer(acme_key.plaintext, "/api/v1/usage").json()["api_calls"] for _ in range(3)]

    assert counts == [1, 2, 3]


def test_api_calls_of_all_keys_revoked_ones_included_add_up(acme, acme_key, bearer):
    other = api_key_create(organisation=acme, name="other")
    bearer(other.plaintext, "/api/v1/ping")
    bearer(other.plaintext, "/api/v1/ping")
    api_key_revoke(api_key=other.api_key)

    assert bearer(acme_key.plaintext, "/api/v1/usage").json()["api_calls"] == 3


@pytest.mark.live
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_200_concurrent_requests_are_counted_exactly(live_server, acme_key):
    """10 threads x 20 requests against a live server: the count is exactly 200, plus the read.

    Runs on both databases: on PostgreSQL it checks the upsert under row-level concurrency, on
    SQLite (WAL, IMMEDIATE transactions) under its database-level write lock.
    """
    url = f"{live_server.url}/api/v1/ping"
    header = {"Authorization": f"Bearer {acme_key.plaintext}"}

    def twenty_requests() -> list[int]:
        with requests.Session() as session:
            return [session.get(url, headers=header, timeout=30).status_code for _ in range(20)]

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = [status for batch in pool.map(lambda _: twenty_requests(), range(10)) for status in batch]

    assert statuses == [200] * 200
    assert sum(calls(acme_key.api_key).values()) == 200
    usage = requests.get(f"{live_server.url}/api/v1/usage", headers=header, timeout=30).json()
    assert usage["api_calls"] == 201
