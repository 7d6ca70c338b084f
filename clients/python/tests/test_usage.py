"""``client.usage``: the requests it sends and the typed results it gives back."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from fakes import ALL_TIME_TEXT, API_KEY, MONTHLY_TEXT, json_response
from usage_portal_client import AllTimeUsage, KeyUsage, MonthlyUsage, MonthUsage, UsagePortalError


def test_get_without_months_asks_for_the_current_month(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))

    usage = client.usage.get()

    (request,) = portal.requests
    assert request.method == "GET"
    assert str(request.url) == "http://portal.test/usage"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("usage-portal-client/")
    assert isinstance(usage, MonthlyUsage)


def test_get_with_months_sends_them_as_given(client, portal):
    portal.answer(
        json_response(200, MONTHLY_TEXT), json_response(200, MONTHLY_TEXT), json_response(200, MONTHLY_TEXT)
    )

    client.usage.get(start_month="2025-01", end_month="2025-02")
    client.usage.get("2025-01")
    client.usage.get(end_month=dt.date(2025, 2, 17))

    assert [dict(request.url.params) for request in portal.requests] == [
        {"start_month": "2025-01", "end_month": "2025-02"},
        {"start_month": "2025-01"},
        {"end_month": "2025-02"},
    ]


def test_an_empty_month_is_sent_for_the_portal_to_judge(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))

    client.usage.get(start_month="")

    assert portal.requests[0].url.query == b"start_month="


def test_the_monthly_result_has_the_contract_fields_as_typed_attributes(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))

    usage = client.usage.get()

    assert usage.period.start_month == "2025-01"
    assert usage.period.end_month == "2025-02"
    assert usage.totals.jobs == 108
    assert usage.totals.base_cost == Decimal("0.07482")
    assert usage.totals.free_jobs_left == 0
    january, february = usage.monthly_breakdown
    assert isinstance(january, MonthUsage)
    assert january.month == "2025-01"
    assert january.tiers == {"tier1": 108, "tier2": 0, "tier3": 0, "tier4": 0}
    assert type(january.tiers) is dict
    assert february.jobs == 0
    assert list(usage.api_keys) == ["some api key", "another api key"]
    key = usage.api_keys["some api key"]
    assert isinstance(key, KeyUsage)
    assert key.tokens.transcription == 1520
    assert key.tokens.note_generation == 2715
    assert key.costs.base == Decimal("0.06950")
    assert key.tiers["tier1"] == 107


def test_money_and_percentages_are_exact_decimals_never_floats(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))

    usage = client.usage.get()

    money = [usage.totals.base_cost, usage.totals.savings, usage.totals.effective_discount_percentage]
    money += [usage.monthly_breakdown[0].current_tier_discount, usage.api_keys["some api key"].costs.final]
    assert all(type(value) is Decimal for value in money)
    assert str(usage.totals.base_cost) == "0.07482"
    assert str(usage.totals.savings) == "0.00000"
    assert str(usage.api_keys["some api key"].costs.base) == "0.06950"
    assert type(usage.totals.jobs) is int


def test_more_digits_than_a_float_holds_survive(client, portal):
    text = MONTHLY_TEXT.replace('"base_cost":0.07482,', '"base_cost":12345678901234.00001,', 1)
    portal.answer(json_response(200, text))

    usage = client.usage.get()

    assert usage.totals.base_cost == Decimal("12345678901234.00001")


def test_to_dict_gives_the_json_body_back(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))

    usage = client.usage.get()

    assert usage.to_dict() == json.loads(MONTHLY_TEXT, parse_float=Decimal)
    assert json.loads(usage.to_json()) == json.loads(MONTHLY_TEXT)
    assert usage.to_json() == MONTHLY_TEXT
    assert MonthlyUsage.from_dict(usage.to_dict()) == usage


def test_results_are_frozen(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))
    usage = client.usage.get()

    with pytest.raises(AttributeError):
        usage.totals.jobs = 1  # type: ignore[misc]


def test_all_time_reads_the_all_time_contract(client, portal):
    portal.answer(json_response(200, ALL_TIME_TEXT))

    usage = client.usage.all_time()

    assert str(portal.requests[0].url) == "http://portal.test/api/v1/usage"
    assert isinstance(usage, AllTimeUsage)
    assert usage.org_id == "org_abc123"
    assert usage.period == "all_time"
    assert usage.total_jobs == 142
    assert usage.completed_jobs == 138
    assert usage.total_duration_seconds == 49320
    assert usage.jobs_by_language == {"Hindi": 58, "Tamil": 44, "Telugu": 22, "Punjabi": 18}
    assert usage.api_calls == 612
    assert usage.to_json() == ALL_TIME_TEXT


def test_the_seed_example_prints_the_usage(client, portal, capsys):
    portal.answer(json_response(200, MONTHLY_TEXT))

    usage_info = client.usage.get()  # optional start_month and end_month params.
    print(usage_info)

    printed = capsys.readouterr().out
    assert printed.startswith("MonthlyUsage(period=Period(start_month='2025-01', end_month='2025-02')")
    assert "base_cost=Decimal('0.07482')" in printed


@pytest.mark.parametrize(
    "text",
    [
        '{"period": "all_time"}',
        MONTHLY_TEXT.replace('"jobs":108', '"jobs":"108"', 1),
        "[]",
    ],
)
def test_an_answer_that_does_not_fit_the_contract_is_a_client_error(client, portal, text):
    portal.answer(json_response(200, text))

    with pytest.raises(UsagePortalError, match="Unexpected answer from /usage"):
        client.usage.get()


def test_a_success_that_is_not_json_is_a_client_error(client, portal):
    portal.answer(json_response(200, "<html>hello</html>"))

    with pytest.raises(UsagePortalError, match="not JSON"):
        client.usage.get()
