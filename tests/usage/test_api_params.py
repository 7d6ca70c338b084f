"""Every period rule of SPEC "GET /usage", and organisation isolation whatever the query string."""

import datetime as dt

import pytest
import time_machine

from accounts.services import api_key_create
from usage.calls import api_calls_flush
from usage.models import ApiCallCount

CURRENT = "2025-03"


def months_of(body) -> list[str]:
    return [month["month"] for month in body["monthly_breakdown"]]


@pytest.mark.parametrize(
    ("params", "start", "end", "count"),
    [
        ({}, CURRENT, CURRENT, 1),
        ({"start_month": "2025-01"}, "2025-01", CURRENT, 3),
        ({"start_month": CURRENT}, CURRENT, CURRENT, 1),
        ({"end_month": "2024-11"}, "2024-11", "2024-11", 1),
        ({"end_month": CURRENT}, CURRENT, CURRENT, 1),
        ({"start_month": "2024-11", "end_month": "2025-02"}, "2024-11", "2025-02", 4),
        ({"start_month": "2024-12", "end_month": "2024-12"}, "2024-12", "2024-12", 1),
        ({"start_month": "2015-04", "end_month": CURRENT}, "2015-04", CURRENT, 120),
        ({"start_month": "2015-04"}, "2015-04", CURRENT, 120),
        ({"start_month": "2005-01", "end_month": "2014-12"}, "2005-01", "2014-12", 120),
        (
            {"start_month": "2025-01", "foo": "bar", "org_id": "org_globex", "format": "xml"},
            "2025-01",
            CURRENT,
            3,
        ),
    ],
)
def test_valid_periods(acme_key, bearer, march_2025, params, start, end, count):
    response = bearer(acme_key.plaintext, "/usage", params)

    assert response.status_code == 200
    body = response.json()
    assert body["period"] == {"start_month": start, "end_month": end}
    months = months_of(body)
    assert len(months) == count
    assert months[0] == start and months[-1] == end
    assert months == sorted(months)


MALFORMED = [
    "",
    " ",
    "2025-1",
    "2025-001",
    "25-01",
    "2025-13",
    "2025-00",
    "0000-01",
    "2025-01-01",
    "2025/01",
    "202501",
    "abcd-ef",
    " 2025-01",
    "2025-01 ",
    "2025-01\n",
    "\uff12\uff10\uff12\uff15-01",  # full-width digits
    "2025-01'; DROP TABLE x; --",
    "9" * 5000,
]


@pytest.mark.parametrize("parameter", ["start_month", "end_month"])
@pytest.mark.parametrize("value", MALFORMED)
def test_a_malformed_month_is_400_naming_the_parameter(acme_key, bearer, march_2025, parameter, value):
    response = bearer(acme_key.plaintext, "/usage", {parameter: value})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", parameter}
    assert parameter in body["detail"]
    assert "YYYY-MM" in body[parameter][0]


def test_both_malformed_names_both(acme_key, bearer, march_2025):
    body = bearer(acme_key.plaintext, "/usage", {"start_month": "x", "end_month": ""}).json()

    assert set(body) == {"detail", "start_month", "end_month"}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"start_month": "2025-04"}, "start_month"),
        ({"end_month": "2025-04"}, "end_month"),
        ({"start_month": "2025-01", "end_month": "2025-04"}, "end_month"),
        ({"start_month": "2026-01", "end_month": "2025-01"}, "start_month"),
        ({"end_month": "9999-12"}, "end_month"),
    ],
)
def test_a_month_after_the_current_month_is_400(acme_key, bearer, march_2025, params, parameter):
    response = bearer(acme_key.plaintext, "/usage", params)

    assert response.status_code == 400
    assert parameter in response.json()
    assert "after the current month (2025-03)" in response.json()[parameter][0]


def test_start_after_end_is_400_naming_start_month(acme_key, bearer, march_2025):
    response = bearer(acme_key.plaintext, "/usage", {"start_month": "2025-02", "end_month": "2025-01"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid query parameter: start_month.",
        "start_month": ["2025-02 is after end_month (2025-01)."],
    }


@pytest.mark.parametrize(
    "params",
    [
        {"start_month": "2015-03", "end_month": CURRENT},
        {"start_month": "2015-03"},
        {"start_month": "2000-01", "end_month": "2010-01"},
        {"start_month": "0001-01"},
    ],
)
def test_more_than_120_months_is_400(acme_key, bearer, march_2025, params):
    response = bearer(acme_key.plaintext, "/usage", params)

    assert response.status_code == 400
    assert "at most 120" in response.json()["start_month"][0]


def test_a_repeated_parameter_uses_its_last_value(acme_key, bearer, march_2025):
    response = bearer(acme_key.plaintext, "/usage?start_month=x&start_month=2025-02", {})

    assert response.status_code == 200
    assert response.json()["period"]["start_month"] == "2025-02"


def test_every_rejected_period_is_still_an_api_call(acme, acme_key, bearer, march_2025):
    for params in (
        {"start_month": ""},
        {"end_month": "2030-01"},
        {"start_month": "2025-02", "end_month": "2025-01"},
    ):
        assert bearer(acme_key.plaintext, "/usage", params).status_code == 400

    api_calls_flush()  # with Redis, counts reach the table at a flush
    assert ApiCallCount.objects.get(api_key=acme_key.api_key).calls == 3


@pytest.mark.parametrize(
    ("moment", "current", "future"),
    [
        (dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=dt.UTC), "2025-01", "2025-02"),
        (dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.UTC), "2024-12", "2025-01"),
        (dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.UTC), "2024-02", "2024-03"),
    ],
)
def test_the_current_month_is_the_utc_month_at_year_and_month_boundaries(
    acme_key, bearer, moment, current, future
):
    with time_machine.travel(moment, tick=False):
        default = bearer(acme_key.plaintext, "/usage")
        ahead = bearer(acme_key.plaintext, "/usage", {"end_month": future})

    assert default.json()["period"] == {"start_month": current, "end_month": current}
    assert ahead.status_code == 400


def test_the_all_time_endpoint_ignores_every_parameter(acme_key, bearer):
    response = bearer(acme_key.plaintext, "/api/v1/usage", {"start_month": "garbage", "org_id": "org_globex"})

    assert response.status_code == 200
    assert response.json()["org_id"] == "org_acme"


# Isolation ------------------------------------------------------------------------------------


@pytest.fixture
def two_organisations(acme, globex, acme_key, job, add_jobs):
    """Acme: 2 Hindi jobs with its key. Globex: 3 Tamil jobs with its key 'globex key', 1 web job."""
    globex_key = api_key_create(organisation=globex, name="globex key")
    moment = dt.datetime(2025, 2, 10, tzinfo=dt.UTC)
    add_jobs(
        [
            *(job(acme, api_key=acme_key.api_key, created_at=moment) for _ in range(2)),
            *(
                job(globex, api_key=globex_key.api_key, created_at=moment, language="Tamil", note_tokens=9)
                for _ in range(3)
            ),
            job(globex, created_at=moment),
        ]
    )
    return acme_key, globex_key


QUERY_STRINGS = [
    "",
    "?org_id=org_globex",
    "?organisation=org_globex&org=org_globex",
    "?start_month=2025-01&org_id=org_globex",
    "?api_key=globex+key",
    "?start_month=2025-01&end_month=2025-03&org_id=org_globex&org_id=org_acme",
]


@pytest.mark.parametrize("query", QUERY_STRINGS)
def test_a_key_sees_only_its_own_organisation_whatever_the_query_string(
    two_organisations, bearer, march_2025, query
):
    acme_key, globex_key = two_organisations

    acme_monthly = bearer(acme_key.plaintext, f"/usage{query}").json()
    globex_monthly = bearer(globex_key.plaintext, f"/usage{query}").json()
    acme_all = bearer(acme_key.plaintext, f"/api/v1/usage{query}").json()
    globex_all = bearer(globex_key.plaintext, f"/api/v1/usage{query}").json()

    if "start_month" in query:
        assert acme_monthly["totals"]["jobs"] == 2
        assert set(acme_monthly["api_keys"]) == {"some api key"}
        assert globex_monthly["totals"]["jobs"] == 4
        assert set(globex_monthly["api_keys"]) == {"globex key"}
    else:
        assert acme_monthly["totals"]["jobs"] == 0 and acme_monthly["api_keys"] == {}
        assert globex_monthly["totals"]["jobs"] == 0 and globex_monthly["api_keys"] == {}
    assert acme_all["org_id"] == "org_acme"
    assert acme_all["jobs_by_language"] == {"Hindi": 2}
    assert acme_all["api_calls"] == 2
    assert globex_all["org_id"] == "org_globex"
    assert globex_all["jobs_by_language"] == {"Tamil": 3}
    assert globex_all["api_calls"] == 2
