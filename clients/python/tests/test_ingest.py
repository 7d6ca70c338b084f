"""``client.ingest.jobs``: the request body, the typed answer, the size limit."""

import datetime as dt
import json

import pytest

from fakes import json_response
from usage_portal_client import IngestItemResult, IngestResult, RequestTooLargeError

ITEM = {
    "org_id": "org_abc123",
    "external_id": "j-1",
    "api_key": "some api key",
    "created_at": "2025-01-03T10:00:00Z",
    "language": "Hindi",
    "audio_duration_seconds": 312,
    "status": "completed",
    "has_transcript": True,
    "has_lrc": True,
    "transcription_tokens": 14,
    "note_tokens": 27,
}

ANSWER = {
    "created": 1,
    "updated": 0,
    "unchanged": 0,
    "rejected": 1,
    "results": [
        {"index": 0, "external_id": "j-1", "status": "created"},
        {
            "index": 1,
            "external_id": "j-9",
            "status": "rejected",
            "errors": [
                {"field": "status", "message": "'done' is not one of queued, processing, completed, failed."},
                {"field": "note_tokens", "message": "Must be 0 or more."},
            ],
        },
    ],
}


def test_posts_the_items_in_a_jobs_envelope(client, portal):
    portal.answer(json_response(200, ANSWER))

    client.ingest.jobs([ITEM, {**ITEM, "external_id": "j-9", "status": "done", "note_tokens": -1}])

    (request,) = portal.requests
    assert request.method == "POST"
    assert request.url.path == "/api/v1/ingest/jobs"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    assert body == {"jobs": [ITEM, {**ITEM, "external_id": "j-9", "status": "done", "note_tokens": -1}]}


def test_a_datetime_created_at_is_sent_as_iso_8601(client, portal):
    portal.answer(json_response(200, {**ANSWER, "rejected": 0, "results": ANSWER["results"][:1]}))

    client.ingest.jobs(item for item in [{**ITEM, "created_at": dt.datetime(2025, 1, 3, 10, tzinfo=dt.UTC)}])

    assert json.loads(portal.requests[0].content)["jobs"][0]["created_at"] == "2025-01-03T10:00:00Z"


def test_the_answer_is_typed(client, portal):
    portal.answer(json_response(200, ANSWER))

    result = client.ingest.jobs([ITEM, ITEM])

    assert isinstance(result, IngestResult)
    assert (result.created, result.updated, result.unchanged, result.rejected) == (1, 0, 0, 1)
    created, rejected = result.results
    assert isinstance(created, IngestItemResult)
    assert created.errors is None
    assert rejected.status == "rejected"
    assert [(error.field, error.message) for error in rejected.errors] == [
        ("status", "'done' is not one of queued, processing, completed, failed."),
        ("note_tokens", "Must be 0 or more."),
    ]
    assert result.to_dict() == ANSWER  # "errors" stays absent where the portal left it out


def test_too_many_items_is_request_too_large(client, portal):
    portal.answer(json_response(413, {"detail": "At most 1,000 jobs per request."}))

    with pytest.raises(RequestTooLargeError) as caught:
        client.ingest.jobs([ITEM] * 1001)

    assert caught.value.detail == "At most 1,000 jobs per request."
    assert len(portal.requests) == 1


def test_one_job_object_instead_of_a_list_is_refused_before_sending(client, portal):
    with pytest.raises(TypeError, match="list of job objects"):
        client.ingest.jobs(ITEM)

    assert portal.requests == []
