"""The Python client (clients/python) against a live portal: the same numbers as the portal's own.

Every figure the client returns is compared with what Django's test client reads from the same
endpoint, parsed with exact decimals. The jobs and ingestion endpoints are checked when the portal
has them, and skipped with the reason while it answers 404.
"""

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import requests

from accounts.services import api_key_create, api_key_revoke, organisation_create
from tests.factories import make_job, run_manage
from usage.months import add_months, current_month, format_month
from usage_portal_client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    MonthlyUsage,
    NotFoundError,
    PermissionDeniedError,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"


def this_month() -> str:
    return format_month(current_month())


def last_month() -> str:
    return format_month(add_months(current_month(), -1))


@pytest.fixture
def customer(add_jobs):
    """org_client1: 2 jobs last month, 5 this month (3 + 1 under two keys, 1 web); 2 free jobs.

    Tokens differ per job so that money has five significant decimals and the free jobs save.
    """
    organisation = organisation_create(name="Client customer", org_id="org_client1", free_job_allowance=2)
    main_key = api_key_create(organisation=organisation, name="some api key")
    other_key = api_key_create(organisation=organisation, name="another api key")
    previous = add_months(current_month(), -1)
    start = dt.datetime(previous.year, previous.month, 1, tzinfo=dt.UTC)
    now_start = dt.datetime(current_month().year, current_month().month, 1, tzinfo=dt.UTC)
    jobs = [
        make_job(
            organisation,
            api_key=main_key.api_key,
            created_at=start + dt.timedelta(hours=index),
            transcription_tokens=1000 + index,
            note_tokens=500 + index,
            language="Tamil",
        )
        for index in range(2)
    ]
    jobs += [
        make_job(
            organisation,
            api_key=main_key.api_key,
            created_at=now_start + dt.timedelta(seconds=index),
            transcription_tokens=1234 + index,
            note_tokens=567 + 3 * index,
            audio_duration_seconds=600,
            has_lrc=index != 1,
        )
        for index in range(3)
    ]
    jobs.append(
        make_job(
            organisation,
            api_key=other_key.api_key,
            created_at=now_start + dt.timedelta(seconds=10),
            transcription_tokens=152,
            note_tokens=190,
            language="Telugu",
        )
    )
    jobs.append(
        make_job(organisation, created_at=now_start + dt.timedelta(seconds=20), transcription_tokens=7)
    )
    add_jobs(jobs)
    return main_key


@pytest.fixture
def portal_json(client):
    """``portal_json(key, path, params)``: the portal's answer via Django's test client, exact decimals."""

    def get(key: str, path: str, params: dict | None = None):
        response = client.get(path, params or {}, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.content
        return json.loads(response.content, parse_float=Decimal)

    return get


@pytest.fixture
def api(live_server, customer):
    """The Python client with the customer's key, pointed at the live portal."""
    with Client(customer.plaintext, live_server.url) as made:
        yield made


# usage.get ------------------------------------------------------------------------------------


def test_usage_get_without_months_is_the_portals_current_month(api, customer, portal_json):
    usage = api.usage.get()

    assert isinstance(usage, MonthlyUsage)
    assert usage.to_dict() == portal_json(customer.plaintext, "/usage")
    assert usage.period.start_month == usage.period.end_month == this_month()
    assert usage.totals.jobs == 5
    assert [month.month for month in usage.monthly_breakdown] == [this_month()]
    assert set(usage.api_keys) == {"some api key", "another api key"}


def test_usage_get_with_months_is_the_portals_answer(api, customer, portal_json):
    usage = api.usage.get(start_month=last_month(), end_month=this_month())

    expected = portal_json(
        customer.plaintext, "/usage", {"start_month": last_month(), "end_month": this_month()}
    )
    assert usage.to_dict() == expected
    assert [month.month for month in usage.monthly_breakdown] == [last_month(), this_month()]
    assert [month.jobs for month in usage.monthly_breakdown] == [2, 5]
    assert usage.totals.jobs == 7
    assert usage.totals.free_jobs_left == 0
    assert usage.totals.savings > 0  # the two free jobs
    assert usage.totals.final_cost == sum(month.final_cost for month in usage.monthly_breakdown)
    assert all(type(month.final_cost) is Decimal for month in usage.monthly_breakdown)


def test_usage_get_with_only_one_month(api, customer, portal_json):
    from_start = api.usage.get(start_month=last_month())
    only_end = api.usage.get(end_month=last_month())

    assert from_start.to_dict() == portal_json(customer.plaintext, "/usage", {"start_month": last_month()})
    assert (from_start.period.start_month, from_start.period.end_month) == (last_month(), this_month())
    assert only_end.to_dict() == portal_json(customer.plaintext, "/usage", {"end_month": last_month()})
    assert [month.month for month in only_end.monthly_breakdown] == [last_month()]


def test_usage_json_digits_are_the_portals(api, customer, live_server):
    text = requests.get(
        f"{live_server.url}/usage",
        params={"start_month": last_month()},
        headers={"Authorization": f"Bearer {customer.plaintext}"},
        timeout=30,
    ).text

    assert api.usage.get(start_month=last_month()).to_json() == text


# usage.all_time -------------------------------------------------------------------------------


def test_usage_all_time_is_the_portals_answer(api, customer, portal_json):
    usage = api.usage.all_time()

    expected = portal_json(customer.plaintext, "/api/v1/usage")
    assert expected["api_calls"] == usage.api_calls + 1  # the portal's own read is one more call
    assert usage.to_dict() == {**expected, "api_calls": usage.api_calls}
    assert usage.org_id == "org_client1"
    assert usage.period == "all_time"
    assert usage.total_jobs == 6  # the web job is not an API job
    assert usage.completed_jobs == 5
    assert usage.jobs_by_language == {"Hindi": 3, "Tamil": 2, "Telugu": 1}


# errors ---------------------------------------------------------------------------------------


def test_a_revoked_key_raises_authentication_error(live_server, customer):
    api_key_revoke(api_key=customer.api_key)

    with pytest.raises(AuthenticationError) as caught, Client(customer.plaintext, live_server.url) as api:
        api.usage.get()

    assert caught.value.status_code == 401
    assert caught.value.detail
    assert caught.value.response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_month_raises_bad_request_naming_it(api):
    with pytest.raises(BadRequestError) as caught:
        api.usage.get(start_month="2025-13")

    assert caught.value.param == "start_month"
    assert caught.value.detail == "Invalid query parameter: start_month."
    assert "is not a month" in caught.value.errors["start_month"][0]


def test_a_future_end_month_names_end_month(api):
    next_month = format_month(add_months(current_month(), 1))

    with pytest.raises(BadRequestError) as caught:
        api.usage.get(start_month=this_month(), end_month=next_month)

    assert caught.value.param == "end_month"


# async ----------------------------------------------------------------------------------------


def test_async_client_gives_the_same_answers(live_server, customer, portal_json):
    async def scenario():
        async with AsyncClient(customer.plaintext, live_server.url) as api:
            monthly = await api.usage.get(start_month=last_month(), end_month=this_month())
            all_time = await api.usage.all_time()
            with pytest.raises(BadRequestError) as caught:
                await api.usage.get(start_month="")
            return monthly, all_time, caught.value

    monthly, all_time, error = asyncio.run(scenario())

    expected = portal_json(
        customer.plaintext, "/usage", {"start_month": last_month(), "end_month": this_month()}
    )
    assert monthly.to_dict() == expected
    assert all_time.total_jobs == 6
    assert error.param == "start_month"


def test_async_client_with_a_revoked_key(live_server, customer):
    api_key_revoke(api_key=customer.api_key)

    async def scenario():
        async with AsyncClient(customer.plaintext, live_server.url) as api:
            await api.usage.all_time()

    with pytest.raises(AuthenticationError):
        asyncio.run(scenario())


# the command line and the README ---------------------------------------------------------------


def client_environment(live_server, key: str) -> dict[str, str]:
    python_path = os.pathsep.join(filter(None, [str(CLIENT_DIR / "src"), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "USAGE_PORTAL_API_KEY": key,
        "USAGE_PORTAL_BASE_URL": live_server.url,
        "PYTHONPATH": python_path,
    }


def test_the_command_line_prints_the_portals_json_and_table(live_server, customer, portal_json):
    environment = client_environment(live_server, customer.plaintext)
    command = [sys.executable, "-m", "usage_portal_client", "usage", "--start-month", last_month()]

    as_json = subprocess.run(
        [*command, "--json"], env=environment, capture_output=True, text=True, timeout=60
    )
    as_table = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)

    assert as_json.returncode == 0, as_json.stderr
    expected = portal_json(customer.plaintext, "/usage", {"start_month": last_month()})
    assert json.loads(as_json.stdout, parse_float=Decimal) == expected
    assert as_table.returncode == 0, as_table.stderr
    assert as_table.stdout.startswith(f"Usage {last_month()} to {this_month()}\n")
    assert "some api key" in as_table.stdout
    assert f"{expected['totals']['final_cost']:.5f}" in as_table.stdout


def test_the_readme_example_runs_as_written(live_server, customer):
    readme = (CLIENT_DIR / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.DOTALL).group(1)
    assert "usage_info = client.usage.get() #optional start_month and end_month params." in example

    result = subprocess.run(
        [sys.executable, "-c", example],
        env=client_environment(live_server, customer.plaintext),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MonthlyUsage(period=Period(")
    assert "Processed " in result.stdout


# jobs and ingestion (built in parallel: skipped while the portal answers 404) ------------------


def test_jobs_list_walks_every_job_of_the_month(api):
    try:
        jobs = list(api.jobs.list(this_month(), limit=2))
    except NotFoundError:
        pytest.skip("GET /api/v1/jobs answers 404: this portal has no jobs API yet")

    month = api.usage.get(this_month()).monthly_breakdown[0]
    assert len(jobs) == month.jobs == 5
    assert [job.created_at for job in jobs] == sorted(job.created_at for job in jobs)
    assert sum(job.final_cost for job in jobs).quantize(Decimal("0.00001"), ROUND_HALF_UP) == month.final_cost
    assert sum(job.base_cost for job in jobs).quantize(Decimal("0.00001"), ROUND_HALF_UP) == month.base_cost
    web_jobs = list(api.jobs.list(this_month(), api_key=""))
    assert [job.api_key for job in web_jobs] == [None]
    pages = list(api.jobs.list(this_month(), limit=2).pages())
    assert [len(page.data) for page in pages] == [2, 2, 1]
    assert pages[-1].next_cursor is None


def test_ingest_jobs_writes_what_usage_then_shows(live_server, customer, api):
    moment = dt.datetime(current_month().year, current_month().month, 1, 0, 0, 30, tzinfo=dt.UTC)
    item = {
        "org_id": "org_client1",
        "external_id": "ingested-1",
        "api_key": "some api key",
        "created_at": moment,
        "language": "Hindi",
        "audio_duration_seconds": 60,
        "status": "completed",
        "has_transcript": True,
        "has_lrc": True,
        "transcription_tokens": 100,
        "note_tokens": 200,
    }
    items = [item, {**item, "external_id": "ingested-2"}, {**item, "external_id": "bad", "status": "done"}]
    try:
        api.ingest.jobs(items)
    except NotFoundError:
        pytest.skip("POST /api/v1/ingest/jobs answers 404: this portal has no ingestion API yet")
    except PermissionDeniedError:
        pass  # a customer key on the ingestion endpoint is refused, as the SPEC says
    else:
        pytest.fail("a customer key was allowed to ingest jobs")
    created = run_manage("createservicekey", "client live test", "--org", "org_client1")
    if created.returncode != 0:
        pytest.skip(f"manage.py createservicekey is not available: {created.stderr.strip()[-200:]}")
    service_key = created.stdout.strip().splitlines()[-1]

    with Client(service_key, live_server.url) as platform:
        first = platform.ingest.jobs(items)
        again = platform.ingest.jobs(items)
        with pytest.raises(PermissionDeniedError):
            platform.usage.get()

    assert (first.created, first.updated, first.unchanged, first.rejected) == (2, 0, 0, 1)
    assert [result.status for result in first.results] == ["created", "created", "rejected"]
    assert first.results[2].errors[0].field == "status"
    assert (again.created, again.unchanged, again.rejected) == (0, 2, 1)
    assert api.usage.get().totals.jobs == 7
