"""``GET /api/v1/jobs``: pages, cursors, filters, parameters and exact per-job money."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import api_key_create, organisation_create
from portal.hot_redis import redis_client
from tests.factories import at
from usage.calls import api_calls_flush
from usage.models import ApiCallCount, PricingPlan, PricingTier
from usage.selectors import usage_report

URL = "/api/v1/jobs"
MARCH = dt.date(2025, 3, 1)


@pytest.fixture(autouse=True)
def _clock(march_2025):
    """The current month is 2025-03."""


@pytest.fixture
def small_tiers_plan():
    """Tiers every three jobs (0 %, 10 %, 25 %) and rates that make long exact decimals."""
    plan = PricingPlan.objects.create(
        name="small tiers",
        per_job_fee=Decimal("0.000123"),
        transcription_rate=Decimal("0.013337"),
        note_rate=Decimal("0.021001"),
    )
    PricingTier.objects.create(plan=plan, name="bronze", first_rank=1, discount_percent=Decimal("0"))
    PricingTier.objects.create(plan=plan, name="silver", first_rank=4, discount_percent=Decimal("10"))
    PricingTier.objects.create(plan=plan, name="gold", first_rank=7, discount_percent=Decimal("25.5"))
    return plan


@pytest.fixture
def org(small_tiers_plan):
    """An organisation on the small-tier plan with 2 free jobs and two keys."""
    return organisation_create(name="Tiny", org_id="org_tiny", plan=small_tiers_plan, free_job_allowance=2)


@pytest.fixture
def keys(org):
    return {name: api_key_create(organisation=org, name=name) for name in ("alpha", "=beta")}


@pytest.fixture
def jobs_of_march(org, keys, job, add_jobs):
    """One February job, then ten March jobs (two at the same instant, keys and web mixed);
    returns the March external ids in rank order."""
    key_for = [keys["alpha"].api_key, None, keys["=beta"].api_key]
    statuses = ["completed", "failed", "queued", "processing"]
    inputs = [job(org, created_at=at(2025, 2, 27), external_id="feb-1")]
    for index in range(10):
        minute = 2 if index in (3, 4) else index * 5  # 3 and 4 tie: insertion order decides
        inputs.append(
            job(
                org,
                created_at=at(2025, 3, 2, 10, minute),
                api_key=key_for[index % 3],
                external_id=f"mar-{index}",
                status=statuses[index % 4],
                language=["Hindi", "Tamil"][index % 2],
                transcription_tokens=1000 + 37 * index,
                note_tokens=7 * index,
            )
        )
    add_jobs(inputs)
    ordered = sorted(range(10), key=lambda index: (2 if index in (3, 4) else index * 5, index))
    return [f"mar-{index}" for index in ordered]


def _all_pages(bearer, exact_json, key, params):
    """Follow next_cursor to the end; returns (jobs, number of pages)."""
    collected, pages, cursor = [], 0, None
    while True:
        response = bearer(key, URL, {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        body = exact_json(response)
        collected += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return collected, pages


def test_pages_together_are_the_full_ordered_list(bearer, exact_json, keys, jobs_of_march):
    key = keys["alpha"].plaintext
    whole = exact_json(bearer(key, URL, {"month": "2025-03", "limit": "1000"}))
    assert [item["external_id"] for item in whole["data"]] == jobs_of_march
    assert whole["next_cursor"] is None
    paged, pages = _all_pages(bearer, exact_json, key, {"month": "2025-03", "limit": "3"})
    assert pages == 4
    assert paged == whole["data"]


def test_a_page_has_every_field(bearer, exact_json, keys, jobs_of_march):
    body = exact_json(bearer(keys["alpha"].plaintext, URL, {"month": "2025-03", "limit": "1"}))
    assert body["data"] == [
        {
            "external_id": "mar-0",
            "created_at": "2025-03-02T10:00:00Z",
            "api_key": "alpha",
            "language": "Hindi",
            "audio_duration_seconds": 60,
            "status": "completed",
            "has_transcript": True,
            "has_lrc": True,
            "transcription_tokens": 1000,
            "note_tokens": 0,
            "tier": "bronze",
            "is_free": True,  # the February job took the first of two free jobs
            "base_cost": Decimal("0.013460"),
            "final_cost": Decimal("0"),
            "savings": Decimal("0.013460"),
        }
    ]
    assert isinstance(body["next_cursor"], str)


def test_per_job_money_adds_up_exactly_to_the_month(bearer, exact_json, org, keys, jobs_of_march):
    jobs, _ = _all_pages(bearer, exact_json, keys["alpha"].plaintext, {"month": "2025-03", "limit": "4"})
    report = usage_report(organisation=org, start_month=MARCH, end_month=MARCH)
    month = report.months[0]
    assert sum(item["base_cost"] for item in jobs) == month.base_cost
    assert sum(item["final_cost"] for item in jobs) == month.final_cost
    assert sum(item["savings"] for item in jobs) == month.savings
    assert [item["tier"] for item in jobs] == ["bronze"] * 3 + ["silver"] * 3 + ["gold"] * 4
    assert [item["is_free"] for item in jobs] == [True] + [False] * 9  # February used one of two
    assert jobs[0]["final_cost"] == 0 and jobs[0]["savings"] == jobs[0]["base_cost"] > 0
    alpha = [item for item in jobs if item["api_key"] == "alpha"]
    assert sum(item["final_cost"] for item in alpha) == report.keys["alpha"].final_cost
    web = [item for item in jobs if item["api_key"] is None]
    assert sum(item["final_cost"] for item in web) == report.web.final_cost


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"api_key": "alpha"}, lambda item: item["api_key"] == "alpha"),
        ({"api_key": "=beta"}, lambda item: item["api_key"] == "=beta"),
        ({"api_key": ""}, lambda item: item["api_key"] is None),
        ({"api_key": "no such key"}, lambda item: False),
        ({"status": "failed"}, lambda item: item["status"] == "failed"),
        ({"language": "Tamil"}, lambda item: item["language"] == "Tamil"),
        (
            {"api_key": "alpha", "status": "completed"},
            lambda item: item["api_key"] == "alpha" and item["status"] == "completed",
        ),
    ],
)
def test_filters(bearer, exact_json, keys, jobs_of_march, params, expected):
    key = keys["alpha"].plaintext
    everything = exact_json(bearer(key, URL, {"month": "2025-03"}))["data"]
    filtered, _ = _all_pages(bearer, exact_json, key, {"month": "2025-03", "limit": "2", **params})
    assert filtered == [item for item in everything if expected(item)]


def test_the_month_defaults_to_the_current_one(bearer, exact_json, keys, jobs_of_march):
    body = exact_json(bearer(keys["alpha"].plaintext, URL))
    assert [item["external_id"] for item in body["data"]] == jobs_of_march
    february = exact_json(bearer(keys["alpha"].plaintext, URL, {"month": "2025-02"}))
    assert [item["external_id"] for item in february["data"]] == ["feb-1"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"month": ""}, "month"),
        ({"month": "2025-13"}, "month"),
        ({"month": "2025-04"}, "month"),
        ({"month": "march"}, "month"),
        ({"status": "done"}, "status"),
        ({"status": ""}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"api_key": "a\x00b"}, "api_key"),
        ({"language": "\x00"}, "language"),
    ],
)
def test_a_bad_parameter_is_named(bearer, keys, params, name):
    response = bearer(keys["alpha"].plaintext, URL, params)
    assert response.status_code == 400
    body = response.json()
    assert name in body and name in body["detail"]


def test_a_tampered_cursor_is_refused(bearer, exact_json, keys, jobs_of_march):
    key = keys["alpha"].plaintext
    cursor = exact_json(bearer(key, URL, {"limit": "2"}))["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    response = bearer(key, URL, {"limit": "2", "cursor": tampered})
    assert response.status_code == 400 and "cursor" in response.json()


@pytest.mark.parametrize("changed", [{"status": "failed"}, {"month": "2025-02"}, {"api_key": ""}])
def test_a_cursor_of_another_query_is_refused(bearer, exact_json, keys, jobs_of_march, changed):
    key = keys["alpha"].plaintext
    cursor = exact_json(bearer(key, URL, {"limit": "2"}))["next_cursor"]
    response = bearer(key, URL, {"limit": "2", "cursor": cursor, **changed})
    assert response.status_code == 400 and "cursor" in response.json()


def test_a_cursor_of_another_organisation_is_refused(bearer, exact_json, keys, jobs_of_march, acme_key):
    cursor = exact_json(bearer(keys["alpha"].plaintext, URL, {"limit": "2"}))["next_cursor"]
    response = bearer(acme_key.plaintext, URL, {"limit": "2", "cursor": cursor})
    assert response.status_code == 400 and "cursor" in response.json()


def test_other_organisations_jobs_are_never_listed(
    bearer, exact_json, acme, acme_key, jobs_of_march, job, add_jobs
):
    add_jobs([job(acme, created_at=at(2025, 3, 3), external_id="acme-1")])
    body = exact_json(bearer(acme_key.plaintext, URL, {"month": "2025-03"}))
    assert [item["external_id"] for item in body["data"]] == ["acme-1"]
    assert exact_json(bearer(acme_key.plaintext, URL, {"api_key": "alpha"}))["data"] == []


def test_each_request_is_one_api_call(bearer, keys):
    key = keys["alpha"]
    bearer(key.plaintext, URL)
    bearer(key.plaintext, URL, {"limit": "0"})
    api_calls_flush()  # with Redis, counts reach the table at a flush
    assert ApiCallCount.objects.get(api_key=key.api_key).calls == 2


def test_without_a_key_it_is_401(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def _queries(bearer, key, params) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert bearer(key, URL, params).status_code == 200
    return len(captured)


def test_the_query_count_does_not_grow_with_jobs_or_pages(bearer, exact_json, org, keys, job, add_jobs):
    key = keys["alpha"].plaintext
    add_jobs([job(org, created_at=at(2025, 3, 1, 1, 0, 1), api_key=keys["alpha"].api_key)])
    bearer(key, URL)  # records the key's last use once
    few = _queries(bearer, key, {"limit": "50"})
    add_jobs(
        job(org, created_at=at(2025, 3, 4) + dt.timedelta(seconds=index), api_key=keys["alpha"].api_key)
        for index in range(120)
    )
    many = _queries(bearer, key, {"limit": "50"})
    cursor = exact_json(bearer(key, URL, {"limit": "50"}))["next_cursor"]
    deeper = _queries(bearer, key, {"limit": "50", "cursor": cursor})
    filtered_cursor = exact_json(bearer(key, URL, {"limit": "50", "api_key": "alpha"}))["next_cursor"]
    filtered = _queries(bearer, key, {"limit": "50", "cursor": filtered_cursor, "api_key": "alpha"})
    # key check, call count (none when Redis counts it), stale-mark check, plan with its tiers, jobs
    expected = 4 if redis_client() is not None else 5
    assert few == many == deeper == filtered == expected
