"""``client.jobs.list``: filters, lazy pagination over every page, typed jobs."""

import datetime as dt
from decimal import Decimal

import pytest

from fakes import job_body, json_response
from usage_portal_client import BadRequestError, Job, JobPage, UsagePortalError


def page(indexes, next_cursor):
    return json_response(200, {"data": [job_body(index) for index in indexes], "next_cursor": next_cursor})


def test_list_sends_the_month_and_filters(client, portal):
    portal.answer(page([], None))

    list(client.jobs.list("2025-01", api_key="some api key", status="failed", language="Hindi", limit=50))

    (request,) = portal.requests
    assert request.url.path == "/api/v1/jobs"
    assert dict(request.url.params) == {
        "month": "2025-01",
        "api_key": "some api key",
        "status": "failed",
        "language": "Hindi",
        "limit": "50",
    }


def test_without_arguments_nothing_but_the_key_is_sent(client, portal):
    portal.answer(page([], None))

    list(client.jobs.list())

    assert portal.requests[0].url.query == b""


def test_an_empty_api_key_filter_selects_web_jobs(client, portal):
    portal.answer(page([], None))

    list(client.jobs.list(month=dt.date(2025, 1, 1), api_key=""))

    assert portal.requests[0].url.query == b"month=2025-01&api_key="


def test_iterating_walks_every_page_lazily(client, portal):
    portal.answer(page([0, 1], "c1"), page([2, 3], "c2"), page([4], None))

    jobs = client.jobs.list("2025-01", limit=2)
    assert portal.requests == []  # nothing is asked before iterating

    iterator = iter(jobs)
    first = next(iterator)
    assert first.external_id == "j-0"
    assert len(portal.requests) == 1
    rest = list(iterator)

    assert [job.external_id for job in rest] == ["j-1", "j-2", "j-3", "j-4"]
    assert [request.url.params.get("cursor") for request in portal.requests] == [None, "c1", "c2"]
    assert all(request.url.params["month"] == "2025-01" for request in portal.requests)
    assert all(request.url.params["limit"] == "2" for request in portal.requests)


def test_pages_gives_each_page_with_its_cursor(client, portal):
    portal.answer(page([0], "c1"), page([1], None))

    pages = list(client.jobs.list().pages())

    assert [type(item) for item in pages] == [JobPage, JobPage]
    assert [item.next_cursor for item in pages] == ["c1", None]
    assert pages[1].data[0].external_id == "j-1"


def test_a_cursor_resumes_a_walk(client, portal):
    portal.answer(page([7], None))

    list(client.jobs.list("2025-01", cursor="c7"))

    assert portal.requests[0].url.params["cursor"] == "c7"


def test_a_page_pointing_to_itself_stops_the_walk(client, portal):
    portal.answer(page([0], "c1"), page([1], "c1"))

    with pytest.raises(UsagePortalError, match="same cursor"):
        list(client.jobs.list())


def test_jobs_are_typed_with_exact_money(client, portal):
    body = job_body(
        0, api_key=None, final_cost=Decimal("0.000612"), savings=Decimal("0.000068"), is_free=False
    )
    portal.answer(json_response(200, {"data": [body], "next_cursor": None}))

    (job,) = client.jobs.list()

    assert isinstance(job, Job)
    assert job.created_at == dt.datetime(2025, 1, 1, 10, tzinfo=dt.UTC)
    assert job.api_key is None
    assert job.final_cost == Decimal("0.000612")
    assert job.savings == Decimal("0.000068")
    assert job.base_cost == job.final_cost + job.savings
    assert job.has_transcript is True
    assert job.to_dict() == body


def test_a_timestamp_keeps_its_spelling_in_to_dict(client, portal):
    body = job_body(0, created_at="2025-01-01T10:00:00.250000+00:00")
    portal.answer(json_response(200, {"data": [body], "next_cursor": None}))

    (job,) = client.jobs.list()

    assert job.created_at == dt.datetime(2025, 1, 1, 10, 0, 0, 250000, tzinfo=dt.UTC)
    assert job.to_dict()["created_at"] == "2025-01-01T10:00:00.250000+00:00"


def test_the_page_round_trips(client, portal):
    text = (
        '{"data":[{"external_id":"j-1","created_at":"2025-01-03T10:00:00Z","api_key":"k",'
        '"language":"Hindi","audio_duration_seconds":312,"status":"completed","has_transcript":true,'
        '"has_lrc":false,"transcription_tokens":14,"note_tokens":27,"tier":"tier2","is_free":false,'
        '"base_cost":0.00068,"final_cost":0.000612,"savings":0.000068}],"next_cursor":null}'
    )
    portal.answer(json_response(200, text))

    (job_page,) = client.jobs.list().pages()

    assert job_page.to_json() == text


def test_a_bad_parameter_raises_on_iteration(client, portal):
    portal.answer(
        json_response(400, {"detail": "Invalid query parameter: cursor.", "cursor": ["Bad cursor."]})
    )

    jobs = client.jobs.list(cursor="forged")
    with pytest.raises(BadRequestError) as caught:
        list(jobs)

    assert caught.value.param == "cursor"


def test_an_unknown_filter_is_a_type_error(client):
    with pytest.raises(TypeError):
        client.jobs.list(colour="red")  # type: ignore[call-arg]
