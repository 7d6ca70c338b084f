"""Both usage endpoints answer exactly the contracts' fields, with numbers computed by hand here."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import time_machine

from accounts.services import api_key_create, api_key_revoke, organisation_create
from usage.api.schema import MONTHLY_EXAMPLE
from usage.models import PricingPlan, PricingTier

D = Decimal

TOP_FIELDS = {"period", "totals", "monthly_breakdown", "api_keys"}
PERIOD_FIELDS = {"start_month", "end_month"}
TOTALS_FIELDS = {
    "jobs",
    "transcription_tokens",
    "note_tokens",
    "base_cost",
    "final_cost",
    "savings",
    "effective_discount_percentage",
    "free_jobs_left",
}
MONTH_FIELDS = {
    "month",
    "jobs",
    "transcription_tokens",
    "note_tokens",
    "base_cost",
    "final_cost",
    "savings",
    "current_tier_discount",
    "tiers",
}
KEY_FIELDS = {"jobs", "tokens", "costs", "tiers"}
ALL_TIME_FIELDS = {
    "org_id",
    "period",
    "total_jobs",
    "completed_jobs",
    "total_duration_seconds",
    "jobs_by_language",
    "api_calls",
}
INT_FIELDS = {"jobs", "transcription_tokens", "note_tokens", "free_jobs_left"}
DECIMAL_FIELDS = {
    "base_cost",
    "final_cost",
    "savings",
    "effective_discount_percentage",
    "current_tier_discount",
}


def t(day: int, month: int = 1) -> dt.datetime:
    return dt.datetime(2025, month, day, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def mini_plan(db):
    """Per job 0.001; 0.01 / 0.02 per 1K tokens; tier2 from rank 4 (10 %), tier3 from rank 7 (25 %)."""
    plan = PricingPlan.objects.create(
        name="mini", per_job_fee=D("0.001"), transcription_rate=D("0.01"), note_rate=D("0.02")
    )
    for name, first_rank, discount in (("tier1", 1, "0"), ("tier2", 4, "10"), ("tier3", 7, "25")):
        PricingTier.objects.create(plan=plan, name=name, first_rank=first_rank, discount_percent=D(discount))
    return plan


@pytest.fixture
def initech(mini_plan, job, add_jobs):
    """An organisation on the mini plan with 2 free jobs, two keys (beta revoked) and web jobs.

    Base cost of a job = 0.001 + t x 0.00001 + n x 0.00002 (t, n: transcription and note tokens).

    2025-01, by rank:
      1 alpha t=100  n=200   base 0.006     free                final 0
      2 web   t=50   n=0     base 0.0015    free                final 0
      3 beta  t=300  n=100   base 0.006     tier1  0 %          final 0.006
      4 alpha t=1000 n=1000  base 0.031     tier2 10 %          final 0.0279
      5 alpha t=0    n=500   base 0.011     tier2 10 %          final 0.0099
      6 web   t=7    n=3     base 0.00113   tier2 10 %          final 0.001017
      7 beta  t=1    n=1     base 0.00103   tier3 25 %          final 0.0007725
    2025-02: no jobs.
    2025-03:
      1 beta  t=2000 n=0     base 0.021     tier1               final 0.021
      2 alpha t=0    n=0     base 0.001     tier1 (failed job)  final 0.001
    """
    organisation = organisation_create(
        name="Initech", org_id="org_initech", plan=mini_plan, free_job_allowance=2
    )
    alpha = api_key_create(organisation=organisation, name="alpha")
    beta = api_key_create(organisation=organisation, name="beta")
    a, b = alpha.api_key, beta.api_key
    add_jobs(
        [
            job(organisation, api_key=a, created_at=t(2), transcription_tokens=100, note_tokens=200),
            job(organisation, created_at=t(3), transcription_tokens=50, note_tokens=0, language="Tamil"),
            job(organisation, api_key=b, created_at=t(4), transcription_tokens=300, note_tokens=100),
            job(organisation, api_key=a, created_at=t(5), transcription_tokens=1000, note_tokens=1000),
            job(organisation, api_key=a, created_at=t(6), transcription_tokens=0, note_tokens=500),
            job(organisation, created_at=t(7), transcription_tokens=7, note_tokens=3),
            job(organisation, api_key=b, created_at=t(8), transcription_tokens=1, note_tokens=1),
            job(organisation, api_key=b, created_at=t(1, 3), transcription_tokens=2000, note_tokens=0),
            job(
                organisation,
                api_key=a,
                created_at=t(2, 3),
                transcription_tokens=0,
                note_tokens=0,
                status="failed",
                has_lrc=False,
            ),
        ]
    )
    api_key_revoke(api_key=b)
    return alpha


def assert_shape(body: dict, tier_names: list[str]) -> None:
    """Exactly the contract's fields at every level, counts as ints and money as numbers."""
    assert set(body) == TOP_FIELDS
    assert set(body["period"]) == PERIOD_FIELDS
    assert all(isinstance(value, str) for value in body["period"].values())
    assert set(body["totals"]) == TOTALS_FIELDS
    blocks = [body["totals"], *body["monthly_breakdown"]]
    for month in body["monthly_breakdown"]:
        assert set(month) == MONTH_FIELDS
        assert isinstance(month["month"], str)
        assert list(month["tiers"]) == tier_names
    for block in blocks:
        for name, value in block.items():
            if name in INT_FIELDS:
                assert type(value) is int, name
            elif name in DECIMAL_FIELDS:
                assert type(value) is Decimal, name
    for usage in body["api_keys"].values():
        assert set(usage) == KEY_FIELDS
        assert set(usage["tokens"]) == {"transcription", "note_generation"}
        assert set(usage["costs"]) == {"base", "final", "savings"}
        assert list(usage["tiers"]) == tier_names
        assert type(usage["jobs"]) is int
        assert all(type(value) is int for value in usage["tokens"].values())
        assert all(type(value) is Decimal for value in usage["costs"].values())
        assert all(type(value) is int for value in usage["tiers"].values())


def test_monthly_usage_matches_the_hand_computed_numbers(initech, bearer, exact_json, march_2025):
    response = bearer(initech.plaintext, "/usage", {"start_month": "2025-01", "end_month": "2025-03"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = exact_json(response)
    assert_shape(body, ["tier1", "tier2", "tier3"])
    assert body == {
        "period": {"start_month": "2025-01", "end_month": "2025-03"},
        "totals": {
            "jobs": 9,
            "transcription_tokens": 3458,
            "note_tokens": 1804,
            "base_cost": D("0.07966"),
            "final_cost": D("0.06759"),  # 0.0675895 rounded half-up
            "savings": D("0.01207"),  # 0.0120705
            "effective_discount_percentage": D("15.15"),  # 0.0120705 / 0.07966 = 15.1525 %
            "free_jobs_left": 0,
        },
        "monthly_breakdown": [
            {
                "month": "2025-01",
                "jobs": 7,
                "transcription_tokens": 1458,
                "note_tokens": 1804,
                "base_cost": D("0.05766"),
                "final_cost": D("0.04559"),  # 0.0455895
                "savings": D("0.01207"),  # 0.0120705
                "current_tier_discount": D("25.00"),  # the last job is in tier3
                "tiers": {"tier1": 3, "tier2": 3, "tier3": 1},
            },
            {
                "month": "2025-02",
                "jobs": 0,
                "transcription_tokens": 0,
                "note_tokens": 0,
                "base_cost": D("0.00000"),
                "final_cost": D("0.00000"),
                "savings": D("0.00000"),
                "current_tier_discount": D("0.00"),
                "tiers": {"tier1": 0, "tier2": 0, "tier3": 0},
            },
            {
                "month": "2025-03",
                "jobs": 2,
                "transcription_tokens": 2000,
                "note_tokens": 0,
                "base_cost": D("0.02200"),
                "final_cost": D("0.02200"),
                "savings": D("0.00000"),
                "current_tier_discount": D("0.00"),
                "tiers": {"tier1": 2, "tier2": 0, "tier3": 0},
            },
        ],
        "api_keys": {
            "alpha": {
                "jobs": 4,
                "tokens": {"transcription": 1100, "note_generation": 1700},
                "costs": {"base": D("0.04900"), "final": D("0.03880"), "savings": D("0.01020")},
                "tiers": {"tier1": 2, "tier2": 2, "tier3": 0},
            },
            "beta": {  # revoked, still listed
                "jobs": 3,
                "tokens": {"transcription": 2301, "note_generation": 101},
                # final 0.0277725 and savings 0.0002575: each rounded half-up on its own
                "costs": {"base": D("0.02803"), "final": D("0.02777"), "savings": D("0.00026")},
                "tiers": {"tier1": 2, "tier2": 0, "tier3": 1},
            },
        },
    }


def test_money_is_written_as_exact_json_numbers(initech, bearer, march_2025):
    response = bearer(initech.plaintext, "/usage", {"start_month": "2025-01"})

    text = response.content.decode()
    assert '"final_cost":0.06759,' in text
    assert '"savings":0.00026}' in text
    assert '"current_tier_discount":25.00,' in text
    assert '"free_jobs_left":0}' in text


def test_one_month_holds_only_that_months_jobs_and_keys(initech, bearer, exact_json, march_2025):
    body = exact_json(bearer(initech.plaintext, "/usage", {"end_month": "2025-02"}))

    assert body["period"] == {"start_month": "2025-02", "end_month": "2025-02"}
    assert body["totals"]["jobs"] == 0
    assert body["api_keys"] == {}
    assert [month["month"] for month in body["monthly_breakdown"]] == ["2025-02"]


def test_totals_are_the_sum_of_months_and_months_of_keys_plus_web(initech, bearer, exact_json, march_2025):
    body = exact_json(bearer(initech.plaintext, "/usage", {"start_month": "2025-01"}))

    months = body["monthly_breakdown"]
    for name in ("jobs", "transcription_tokens", "note_tokens"):
        assert body["totals"][name] == sum(month[name] for month in months)
    key_jobs = sum(usage["jobs"] for usage in body["api_keys"].values())
    web_jobs = 2
    assert body["totals"]["jobs"] == key_jobs + web_jobs
    for tier in ("tier1", "tier2", "tier3"):
        assert sum(month["tiers"][tier] for month in months) == sum(
            usage["tiers"][tier] for usage in body["api_keys"].values()
        ) + (1 if tier in ("tier1", "tier2") else 0)


def test_free_jobs_left_counts_all_time_jobs_whatever_the_period(
    mini_plan, job, add_jobs, bearer, exact_json, march_2025
):
    organisation = organisation_create(name="Hooli", org_id="org_hooli", plan=mini_plan, free_job_allowance=5)
    key = api_key_create(organisation=organisation, name="k")
    add_jobs([job(organisation, api_key=key.api_key, created_at=t(day)) for day in (1, 2, 3)])

    body = exact_json(bearer(key.plaintext, "/usage", {"end_month": "2025-02"}))

    assert body["totals"]["free_jobs_left"] == 2
    assert body["totals"]["jobs"] == 0


def test_standard_plan_crosses_tier2_at_rank_1001(
    acme, acme_key, job, add_jobs, bearer, exact_json, march_2025
):
    """1,002 jobs of base 0.005 (t=100, n=200): ranks 1,001 and 1,002 get 10 % off."""
    start = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    add_jobs(
        [
            job(acme, api_key=acme_key.api_key, created_at=start + dt.timedelta(minutes=rank))
            for rank in range(1002)
        ]
    )

    body = exact_json(
        bearer(acme_key.plaintext, "/usage", {"start_month": "2025-02", "end_month": "2025-02"})
    )

    assert_shape(body, ["tier1", "tier2", "tier3", "tier4"])
    assert body["totals"] == {
        "jobs": 1002,
        "transcription_tokens": 100_200,
        "note_tokens": 200_400,
        "base_cost": D("5.01000"),
        "final_cost": D("5.00900"),
        "savings": D("0.00100"),
        "effective_discount_percentage": D("0.02"),  # 0.001 / 5.01 = 0.01996 %
        "free_jobs_left": 0,
    }
    (february,) = body["monthly_breakdown"]
    assert february["tiers"] == {"tier1": 1000, "tier2": 2, "tier3": 0, "tier4": 0}
    assert february["current_tier_discount"] == D("10.00")
    assert body["api_keys"]["some api key"]["tiers"] == {"tier1": 1000, "tier2": 2, "tier3": 0, "tier4": 0}


def test_the_documented_example_is_what_the_portal_answers(acme, job, add_jobs, bearer):
    """The self-consistent example in the OpenAPI docs, reproduced with real jobs."""
    some = api_key_create(organisation=acme, name="some api key")
    another = api_key_create(organisation=acme, name="another api key")
    jobs = [
        job(
            acme,
            api_key=some.api_key,
            created_at=t(2) + dt.timedelta(seconds=i),
            transcription_tokens=14,
            note_tokens=25,
        )
        for i in range(106)
    ]
    jobs.append(job(acme, api_key=some.api_key, created_at=t(3), transcription_tokens=36, note_tokens=65))
    jobs.append(
        job(acme, api_key=another.api_key, created_at=t(4), transcription_tokens=152, note_tokens=190)
    )
    add_jobs(jobs)

    with time_machine.travel(dt.datetime(2025, 1, 20, tzinfo=dt.UTC), tick=False):
        response = bearer(some.plaintext, "/usage")

    assert json.loads(response.content) == MONTHLY_EXAMPLE


def test_all_time_usage_counts_api_jobs_only_and_every_call(initech, bearer, exact_json, march_2025):
    first = exact_json(bearer(initech.plaintext, "/api/v1/usage"))
    second = exact_json(bearer(initech.plaintext, "/api/v1/usage", {"org_id": "org_other"}))

    assert set(first) == ALL_TIME_FIELDS
    assert first == {
        "org_id": "org_initech",
        "period": "all_time",
        "total_jobs": 7,  # the 2 web jobs do not count
        "completed_jobs": 6,  # the failed job has no LRC
        "total_duration_seconds": 420,
        "jobs_by_language": {"Hindi": 7},
        "api_calls": 1,  # this very request
    }
    assert all(
        type(first[name]) is int for name in ALL_TIME_FIELDS - {"org_id", "period", "jobs_by_language"}
    )
    assert second["api_calls"] == 2


def test_all_time_usage_of_an_organisation_without_jobs(acme, acme_key, bearer, exact_json):
    body = exact_json(bearer(acme_key.plaintext, "/api/v1/usage"))

    assert body == {
        "org_id": "org_acme",
        "period": "all_time",
        "total_jobs": 0,
        "completed_jobs": 0,
        "total_duration_seconds": 0,
        "jobs_by_language": {},
        "api_calls": 1,
    }


def test_a_job_loaded_between_two_requests_shows_at_the_next_one(
    acme, acme_key, job, add_jobs, bearer, exact_json, march_2025
):
    before = exact_json(bearer(acme_key.plaintext, "/usage", {"start_month": "2024-01"}))
    add_jobs([job(acme, api_key=acme_key.api_key, created_at=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))])
    after = exact_json(bearer(acme_key.plaintext, "/usage", {"start_month": "2024-01"}))

    assert before["totals"]["jobs"] == 0
    assert after["totals"]["jobs"] == 1
    assert after["api_keys"]["some api key"]["jobs"] == 1
