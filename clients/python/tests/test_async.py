"""``AsyncClient``: the same surface with ``await``, the same errors, retries and pages."""

import asyncio
import inspect
from decimal import Decimal

import httpx
import pytest

from fakes import ALL_TIME_TEXT, MONTHLY_TEXT, job_body, json_response
from usage_portal_client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    IngestResult,
    MonthlyUsage,
    RateLimitError,
)


def run(coroutine):
    return asyncio.run(coroutine)


def test_usage_get_and_all_time(make_async_client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT), json_response(200, ALL_TIME_TEXT))

    async def scenario():
        async with make_async_client() as client:
            return await client.usage.get("2025-01", "2025-02"), await client.usage.all_time()

    monthly, all_time = run(scenario())

    assert isinstance(monthly, MonthlyUsage)
    assert monthly.totals.base_cost == Decimal("0.07482")
    assert monthly.to_json() == MONTHLY_TEXT
    assert all_time.api_calls == 612
    assert dict(portal.requests[0].url.params) == {"start_month": "2025-01", "end_month": "2025-02"}
    assert portal.requests[1].url.path == "/api/v1/usage"


def test_errors_are_the_same_classes(make_async_client, portal):
    portal.answer(
        json_response(401, {"detail": "Invalid API key."}),
        json_response(400, {"detail": "Invalid query parameter: end_month.", "end_month": ["Bad."]}),
    )
    client = make_async_client()

    with pytest.raises(AuthenticationError):
        run(client.usage.get())
    with pytest.raises(BadRequestError) as caught:
        run(client.usage.get(end_month="2099-01"))

    assert caught.value.param == "end_month"
    assert len(portal.requests) == 2  # neither was retried


def test_retries_wait_with_the_async_sleep(make_async_client, portal, clock):
    portal.answer(
        json_response(429, {"detail": "Slow down."}, {"Retry-After": "2"}),
        httpx.ConnectError("refused"),
        json_response(200, MONTHLY_TEXT),
    )

    run(make_async_client().usage.get())

    assert clock.sleeps == [2.0, 1.0]
    assert len(portal.requests) == 3


def test_retry_after_over_a_minute_is_raised_at_once(make_async_client, portal, clock):
    portal.answer(json_response(429, {"detail": "Slow down."}, {"Retry-After": "120"}))

    with pytest.raises(RateLimitError) as caught:
        run(make_async_client().usage.get())

    assert caught.value.retry_after == 120.0
    assert clock.sleeps == []


def test_jobs_list_walks_every_page_with_async_for(make_async_client, portal):
    portal.answer(
        json_response(200, {"data": [job_body(0), job_body(1)], "next_cursor": "c1"}),
        json_response(200, {"data": [job_body(2)], "next_cursor": None}),
    )

    async def scenario():
        jobs = make_async_client().jobs.list("2025-01", limit=2)
        assert portal.requests == []
        return [job.external_id async for job in jobs]

    assert run(scenario()) == ["j-0", "j-1", "j-2"]
    assert [request.url.params.get("cursor") for request in portal.requests] == [None, "c1"]


def test_ingest_jobs(make_async_client, portal):
    answer = {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "results": [{"index": 0, "external_id": "j-1", "status": "created"}],
    }
    portal.answer(json_response(200, answer))

    result = run(make_async_client().ingest.jobs([{"external_id": "j-1"}]))

    assert isinstance(result, IngestResult)
    assert result.to_dict() == answer
    assert portal.requests[0].method == "POST"


def test_the_async_surface_mirrors_the_sync_one(monkeypatch):
    monkeypatch.setenv("USAGE_PORTAL_API_KEY", "upk_x")
    sync_client, async_client = Client(), AsyncClient()

    for resource, methods in {"usage": ["get", "all_time"], "jobs": ["list"], "ingest": ["jobs"]}.items():
        for name in methods:
            sync_method = getattr(getattr(sync_client, resource), name)
            async_method = getattr(getattr(async_client, resource), name)
            assert (
                inspect.signature(sync_method).parameters.keys()
                == inspect.signature(async_method).parameters.keys()
            )
            assert inspect.iscoroutinefunction(async_method) is (name != "list")
    assert inspect.signature(Client).parameters.keys() == inspect.signature(AsyncClient).parameters.keys()
    sync_client.close()
    run(async_client.close())
