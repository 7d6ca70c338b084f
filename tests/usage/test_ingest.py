"""Job ingestion (``POST /api/v1/ingest/jobs``, ``GET``/``DELETE /api/v1/ingest/jobs/<org>/<id>``):
every status, every envelope error, both kinds of keys, scope, freshness, and agreement with
``import_jobs`` on the same jobs.

(Long because it covers every status, limit and envelope error of one endpoint.)"""

import concurrent.futures
import gzip
import io
import json
import random
import threading
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import override_settings

from accounts.services import api_key_create, organisation_create, service_key_create, service_key_revoke
from usage import importing
from usage.api.ingest import MAX_BODY_BYTES, RequestTooLarge, body_read
from usage.calls import api_calls_total
from usage.engine.recompute import usage_recompute
from usage.models import ApiCallCount, Job, MonthlyUsage, StaleMonth

INGEST = "/api/v1/ingest/jobs"

JOB = {
    "org_id": "org_acme",
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


def item(**overrides) -> dict:
    return {**JOB, **overrides}


@pytest.fixture(autouse=True)
def _clock(march_2025):
    """The current month is 2025-03 in every test here."""


@pytest.fixture(autouse=True)
def _acme_with_its_key(acme_key):
    """Acme and its key "some api key" (the key the items name) exist in every test here."""


@pytest.fixture
def service_key(db):
    return service_key_create(name="platform")


@pytest.fixture
def post(client, service_key):
    """``post(body, key=service key, content_type=..., headers={...})``: POST raw text or a JSON
    value."""

    def send(body, *, key=None, content_type="application/json", headers=(), **extra):
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        headers = {"Authorization": f"Bearer {key or service_key.plaintext}", **dict(headers)}
        return client.post(INGEST, data, content_type=content_type, headers=headers, **extra)

    return send


@pytest.fixture
def job_url():
    def url(external_id: str, org_id: str = "org_acme") -> str:
        return f"{INGEST}/{org_id}/{external_id}"

    return url


def statuses(response) -> list[str]:
    return [result["status"] for result in response.json()["results"]]


def stored(external_id: str) -> dict:
    return Job.objects.values().get(external_id=external_id)


# --- statuses ---------------------------------------------------------------------------------


def test_each_status_is_reported_per_item_in_request_order(post, acme, acme_key):
    post({"jobs": [item(external_id="j-1"), item(external_id="j-2")]})

    response = post(
        {
            "jobs": [
                item(external_id="j-3"),
                item(external_id="j-1"),
                item(external_id="j-2", status="failed"),
                item(external_id="j-9", status="done"),
            ]
        }
    )

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "rejected": 1,
        "results": [
            {"index": 0, "external_id": "j-3", "status": "created"},
            {"index": 1, "external_id": "j-1", "status": "unchanged"},
            {"index": 2, "external_id": "j-2", "status": "updated"},
            {
                "index": 3,
                "external_id": "j-9",
                "status": "rejected",
                "errors": [
                    {
                        "field": "status",
                        "message": (
                            "unknown status 'done' (expected one of completed, failed, processing, queued)"
                        ),
                    }
                ],
            },
        ],
    }
    assert stored("j-2")["status"] == "failed"
    assert not Job.objects.filter(external_id="j-9").exists()


def test_a_rejected_item_lists_every_problem_and_writes_nothing_of_itself(post, acme):
    response = post({"jobs": [item(api_key="nope", language="", note_tokens=-1), item(external_id="j-2")]})

    assert statuses(response) == ["rejected", "created"]
    errors = response.json()["results"][0]["errors"]
    assert [error["field"] for error in errors] == ["api_key", "language", "note_tokens"]
    assert list(Job.objects.values_list("external_id", flat=True)) == ["j-2"]


def test_unchanged_writes_nothing_and_marks_nothing_stale(post, acme, acme_key):
    post({"jobs": [item(), item(external_id="j-2")]})
    acme.refresh_from_db()
    version, row = acme.usage_version, stored("j-1")

    response = post({"jobs": [item(), item(external_id="j-2")]})

    assert statuses(response) == ["unchanged", "unchanged"]
    acme.refresh_from_db()
    assert acme.usage_version == version
    assert not StaleMonth.objects.exists()
    assert stored("j-1") == row


def test_an_external_id_used_by_another_organisation_is_a_job_of_its_own(post, acme, globex):
    """Organisations often number their jobs alike: the same external id in another organisation,
    with the very same values, is a new job there, and each is then judged against its own."""
    globex_item = item(org_id="org_globex", api_key=None)
    acme_item = item(api_key=None)

    assert statuses(post({"jobs": [acme_item]})) == ["created"]
    assert statuses(post({"jobs": [globex_item, acme_item]})) == ["created", "unchanged"]
    failed = {**globex_item, "status": "failed"}
    assert statuses(post({"jobs": [failed, acme_item]})) == ["updated", "unchanged"]
    assert sorted(Job.objects.filter(external_id="j-1").values_list("organisation__org_id", "status")) == [
        ("org_acme", "completed"),
        ("org_globex", "failed"),
    ]


def test_the_same_job_twice_gets_the_last_values_and_the_first_position(post, acme, acme_key):
    response = post(
        {
            "jobs": [
                item(external_id="a", note_tokens=1),
                item(external_id="b"),
                item(external_id="a", note_tokens=2),
                item(external_id="a", note_tokens=2),
            ]
        }
    )

    assert statuses(response) == ["created", "created", "updated", "unchanged"]
    assert list(Job.objects.order_by("pk").values_list("external_id", "note_tokens")) == [("a", 2), ("b", 27)]


def test_array_order_breaks_created_at_ties(post, acme):
    post({"jobs": [item(external_id=name, api_key=None) for name in ("z", "y", "x")]})

    assert list(Job.objects.order_by("pk").values_list("external_id", flat=True)) == ["z", "y", "x"]


def test_an_update_keeps_the_jobs_position(post, acme):
    post({"jobs": [item(external_id="a"), item(external_id="b")]})

    post({"jobs": [item(external_id="b", status="failed"), item(external_id="a", status="failed")]})

    assert list(Job.objects.order_by("pk").values_list("external_id", flat=True)) == ["a", "b"]


# --- freshness and API calls ------------------------------------------------------------------


def test_created_and_updated_jobs_show_in_usage_at_the_next_request(post, bearer, acme, acme_key):
    post({"jobs": [item(), item(external_id="j-2", created_at="2025-03-01T00:00:00Z")]})

    monthly = bearer(acme_key.plaintext, "/usage", {"start_month": "2025-01"}).json()
    assert [month["jobs"] for month in monthly["monthly_breakdown"]] == [1, 0, 1]
    assert bearer(acme_key.plaintext, "/api/v1/usage").json()["total_jobs"] == 2

    post({"jobs": [item(external_id="j-2", created_at="2025-02-01T00:00:00Z", note_tokens=1000)]})

    monthly = bearer(acme_key.plaintext, "/usage", {"start_month": "2025-01"}).json()
    assert [month["jobs"] for month in monthly["monthly_breakdown"]] == [1, 1, 0]
    assert monthly["totals"]["note_tokens"] == 1027
    assert not StaleMonth.objects.exists()


def test_the_usage_refresh_runs_once_the_answer_is_made_and_a_failing_one_costs_nothing(
    post, bearer, acme, acme_key, monkeypatch
):
    from usage import ingesting

    calls = []

    def refresh(*, organisation_ids):
        calls.append(sorted(organisation_ids))
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ingesting, "usage_refresh_organisations", refresh)
    response = post({"jobs": [item()]})

    assert response.status_code == 200 and statuses(response) == ["created"]
    assert calls == [[acme.pk]]  # run when the test client closed the response, after its body
    assert StaleMonth.objects.filter(organisation=acme).exists()  # the marks stay for the next read
    monkeypatch.undo()
    monthly = bearer(acme_key.plaintext, "/usage", {"start_month": "2025-01"}).json()
    assert [month["jobs"] for month in monthly["monthly_breakdown"]] == [1, 0, 0]
    assert not StaleMonth.objects.exists()


def test_the_answer_is_complete_before_the_usage_refresh(client, service_key, acme, acme_key, monkeypatch):
    """The view answers with the marks still there and the refresh tied to the response's close:
    the body exists before it runs."""
    from usage.api.ingest import IngestJobsView, RefreshWhenClosed

    seen = []
    original = IngestJobsView.post

    def post_and_look(self, request):
        response = original(self, request)
        seen.append((StaleMonth.objects.filter(organisation=acme).exists(), type(response)))
        return response

    monkeypatch.setattr(IngestJobsView, "post", post_and_look)
    response = client.post(
        INGEST,
        json.dumps({"jobs": [item()]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {service_key.plaintext}"},
    )
    assert response.status_code == 200
    assert seen == [(True, RefreshWhenClosed)]  # answered with the marks still there, refresh pending
    assert not StaleMonth.objects.exists()  # and resolved once the response was closed


def test_service_key_requests_are_never_api_calls(post, client, job_url, service_key, acme, acme_key):
    headers = {"Authorization": f"Bearer {service_key.plaintext}"}
    post({"jobs": [item()]})
    post("not json")
    client.get(job_url("j-1"), headers=headers)
    client.get("/api/v1/usage", headers=headers)
    client.get("/api/v1/ingest/nothing", headers=headers)

    # Counted or not yet flushed (with Redis), no organisation has a call.
    assert api_calls_total(organisation_id=acme.pk) == 0
    assert not ApiCallCount.objects.exists()


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/usage", "/api/v1/usage", "/api/v1/ping", "/api/v1/other"])
def test_a_service_key_on_a_customer_endpoint_is_refused_403(client, service_key, acme, path):
    response = client.get(path, headers={"Authorization": f"Bearer {service_key.plaintext}"})

    assert response.status_code == 403
    assert "service key" in response.json()["detail"]


def test_a_customer_key_on_ingestion_is_refused_403_and_is_no_call(post, client, job_url, acme, acme_key):
    response = post({"jobs": [item()]}, key=acme_key.plaintext)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "An organisation's API key cannot be used on this endpoint: use a service key."
    }
    got = client.get(job_url("j-1"), headers={"Authorization": f"Bearer {acme_key.plaintext}"})
    assert got.status_code == 403
    assert not Job.objects.exists() and api_calls_total(organisation_id=acme.pk) == 0


@pytest.mark.parametrize("header", [None, "Bearer upsk_nothing", "Basic abc", "Bearer"])
def test_a_missing_or_bad_service_key_is_401(client, acme, header):
    headers = {"Authorization": header} if header else {}
    response = client.post(INGEST, "{}", content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert "detail" in response.json()


@pytest.mark.parametrize("token", ["ключ".encode().decode("latin-1"), "ключ"])  # as WSGI gives it; as text
def test_a_token_that_is_not_ascii_is_an_invalid_service_key(client, acme, token):
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post(INGEST, "{}", content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid service key."}


def test_a_revoked_service_key_is_401(post, service_key, acme):
    service_key_revoke(service_key=service_key.service_key)

    assert post({"jobs": [item()]}).status_code == 401


def test_a_scoped_key_reports_other_organisations_as_unknown(post, client, job_url, acme, globex):
    scoped = service_key_create(name="acme only", organisations=[acme])
    api_key_create(organisation=globex, name="some api key")
    post({"jobs": [item(org_id="org_globex", external_id="g-1")]})  # the unscoped key

    response = post({"jobs": [item(), item(org_id="org_globex")]}, key=scoped.plaintext)

    assert statuses(response) == ["created", "rejected"]
    assert response.json()["results"][1]["errors"] == [
        {"field": "org_id", "message": "unknown organisation 'org_globex'"}
    ]
    headers = {"Authorization": f"Bearer {scoped.plaintext}"}
    assert client.get(job_url("g-1", "org_globex"), headers=headers).status_code == 404
    assert client.delete(job_url("g-1", "org_globex"), headers=headers).status_code == 404
    assert Job.objects.filter(external_id="g-1").exists()


@override_settings(API_INGEST_THROTTLE_RATE="2/min")
def test_the_service_key_is_throttled_with_retry_after(post, acme):
    codes = [post({"jobs": [item()]}).status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    response = post({"jobs": [item()]})
    assert int(response["Retry-After"]) >= 1
    assert "detail" in response.json()


# --- the envelope ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("not json", "The body is not valid JSON"),
        ("  ", "The body is not valid JSON"),
        ("[1, 2]", "The body must be a JSON object"),
        ('{"items": []}', 'The body must have a "jobs" list'),
        ('{"jobs": {}}', 'The body must have a "jobs" list'),
        ('{"jobs": []}', '"jobs" is empty'),
        ('{"jobs": [{}, 3]}', '"jobs"[1] is not a JSON object.'),
        ('{"jobs": [], "jobs": [{}]}', "The body names jobs more than once."),
        ('{"jobs": [NaN]}', "The body is not valid JSON"),
        (b'{"jobs": ["\xff"]}', "The body is not UTF-8 text."),
    ],
)
def test_a_bad_envelope_is_400_and_writes_nothing(post, acme, body, detail):
    response = post(body)

    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert not Job.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_another_content_type_is_415(post, acme, content_type):
    response = post({"jobs": [item()]}, content_type=content_type)

    assert response.status_code == 415
    assert "detail" in response.json()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_compressed_body_is_415_and_writes_nothing(post, acme, encoding):
    body = gzip.compress(json.dumps({"jobs": [item()]}).encode())

    response = post(body, headers={"Content-Encoding": encoding})

    assert response.status_code == 415
    assert response.json() == {
        "detail": f"Content-Encoding '{encoding}' is not accepted: send the JSON uncompressed."
    }
    assert not Job.objects.exists()


def test_an_identity_content_encoding_is_accepted(post, acme):
    assert post({"jobs": [item()]}, headers={"Content-Encoding": "identity"}).status_code == 200


def test_a_chunked_body_is_411_and_writes_nothing(post, acme):
    # Under WSGI a body without a length reads as empty: say so rather than "not JSON".
    response = post({"jobs": [item()]}, headers={"Transfer-Encoding": "chunked"})

    assert response.status_code == 411
    assert response.json() == {
        "detail": "Send the body with a Content-Length header: a chunked (or unsized) body is not accepted."
    }
    assert not Job.objects.exists()


def test_a_body_without_content_length_is_411(client, service_key, acme):
    request = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": INGEST,
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {service_key.plaintext}",
        "wsgi.input": io.BytesIO(json.dumps({"jobs": [item()]}).encode()),
    }
    response = client.request(**request)

    assert response.status_code == 411
    assert not Job.objects.exists()


def test_json_with_a_charset_is_accepted(post, acme):
    assert post({"jobs": [item()]}, content_type="application/json; charset=utf-8").status_code == 200


def test_more_than_1000_items_is_413(post, acme):
    response = post({"jobs": [item(external_id=f"j-{index}") for index in range(1001)]})

    assert response.status_code == 413
    assert response.json() == {"detail": '"jobs" has 1,001 items: send at most 1,000 per request.'}
    assert not Job.objects.exists()


def test_1000_items_are_accepted(post, acme):
    response = post({"jobs": [item(external_id=f"j-{index}", api_key=None) for index in range(1000)]})

    assert response.status_code == 200 and response.json()["created"] == 1000


def test_a_body_over_1_mib_is_413(post, acme):
    body = json.dumps({"jobs": [item(language="x" * (MAX_BODY_BYTES + 1))]})

    response = post(body)

    assert response.status_code == 413
    assert response.json() == {"detail": "The body must be at most 1,048,576 bytes (1 MiB)."}


def test_a_declared_length_over_1_mib_is_413_before_reading(post, acme):
    response = post({"jobs": [item()]}, CONTENT_LENGTH=str(MAX_BODY_BYTES + 1))

    assert response.status_code == 413


def test_the_body_reader_stops_past_the_limit_whatever_the_header_says():
    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, size=-1):
            chunk = super().read(size)
            self.read_bytes += len(chunk)
            return chunk

    stream = Counting(b"x" * 1000)
    with pytest.raises(RequestTooLarge):
        body_read(stream, content_length="10", limit=100)
    assert stream.read_bytes == 101
    assert body_read(io.BytesIO(b"x" * 100), content_length=None, limit=100) == b"x" * 100


# --- hostile items: the same reasons as import_jobs --------------------------------------------


def raw_item(field: str, text: str) -> str:
    rest = {name: value for name, value in JOB.items() if name != field}
    return json.dumps(rest)[:-1] + f', "{field}": {text}}}'


HOSTILE = [
    raw_item("language", json.dumps("a\x00b")),
    raw_item("external_id", json.dumps("a\x00b")),
    raw_item("transcription_tokens", str(2**63)),
    raw_item("note_tokens", "1" + "0" * 400),
    raw_item("audio_duration_seconds", "-1"),
    raw_item("created_at", '"2025-02-29T00:00:00Z"'),
    raw_item("created_at", '"2025-01-03"'),
    raw_item("created_at", '"2099-01-01T00:00:00Z"'),
    raw_item("created_at", '"0001-01-01T00:30:00+01:00"'),
    raw_item("has_lrc", '"yes"'),
    raw_item("language", '"\\ud800"'),
    raw_item("org_id", '"org_nobody"'),
    '{"org_id": "org_acme", ' + json.dumps(JOB)[1:],  # a duplicated field
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_item_is_rejected_with_the_reasons_import_jobs_gives(post, acme, acme_key, text):
    [line] = importing.read_jobs(io.BytesIO(text.encode() + b"\n"))
    assert line.error  # the importer refuses it too

    response = post('{"jobs": [' + text + "]}")

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["status"] == "rejected"
    assert "; ".join(error["message"] for error in result["errors"]) == line.error
    assert not Job.objects.exists()


def test_a_duplicated_field_is_named(post, acme, acme_key):
    response = post('{"jobs": [{"org_id": "org_acme", ' + json.dumps(JOB)[1:] + "]}")

    assert response.json()["results"][0]["errors"] == [
        {"field": "org_id", "message": "duplicate field 'org_id'"}
    ]


def test_a_lone_surrogate_external_id_is_not_echoed(post, acme):
    response = post('{"jobs": [' + raw_item("external_id", '"\\ud800"') + "]}")

    assert response.status_code == 200
    assert response.json()["results"][0]["external_id"] is None


def test_the_same_jobs_imported_and_ingested_give_equal_usage(post, bearer, acme, acme_key, globex, tmp_path):
    keys = {acme: acme_key, globex: api_key_create(organisation=globex, name="some api key")}
    rng = random.Random(14)
    lines = [
        item(
            external_id=f"j-{rng.randrange(300)}",
            api_key=rng.choice(["some api key", None]),
            created_at=f"2025-0{rng.randint(1, 3)}-0{rng.randint(1, 9)}T10:00:00Z",
            status=rng.choice(["completed", "failed"]),
            transcription_tokens=rng.randrange(10_000),
            note_tokens=rng.randrange(10_000),
        )
        for _ in range(400)
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert importing.jobs_import_file(path).imported

    for first in range(0, len(lines), 150):
        response = post({"jobs": [{**line, "org_id": "org_globex"} for line in lines[first : first + 150]]})
        assert response.status_code == 200 and response.json()["rejected"] == 0

    params = {"start_month": "2025-01"}
    assert bearer(keys[acme].plaintext, "/usage", params).json() == (
        bearer(keys[globex].plaintext, "/usage", params).json()
    )


# --- one job: GET and DELETE ------------------------------------------------------------------


def test_get_answers_the_stored_job_as_an_item(post, client, job_url, service_key, acme, acme_key):
    post({"jobs": [item(external_id="a/b c", created_at="2025-01-03T11:00:00+01:00")]})

    response = client.get(job_url("a/b%20c"), headers={"Authorization": f"Bearer {service_key.plaintext}"})

    assert response.status_code == 200
    assert response.json() == {
        **JOB,
        "external_id": "a/b c",
        "month": "2025-01",
        "tier": "tier1",
        "is_free": False,
    }


def test_get_shows_a_web_job_and_a_free_job(post, client, job_url, service_key, acme):
    acme.free_job_allowance = 1
    acme.save()
    post({"jobs": [item(api_key=None)]})

    body = client.get(job_url("j-1"), headers={"Authorization": f"Bearer {service_key.plaintext}"}).json()

    assert (body["api_key"], body["is_free"]) == (None, True)


def test_get_of_an_absent_job_is_404(client, job_url, service_key, acme):
    headers = {"Authorization": f"Bearer {service_key.plaintext}"}

    assert client.get(job_url("nope"), headers=headers).json() == {"detail": "No such job."}
    assert client.get(job_url("nope"), headers=headers).status_code == 404
    assert client.get(job_url("j-1", "org_nobody"), headers=headers).status_code == 404


@pytest.mark.parametrize("external_id", ["a/b", "line\nbreak", "crlf\r\nid", "tab\tid", "100% é"])
def test_get_and_delete_take_any_external_id_percent_encoded(
    post, client, job_url, service_key, acme, external_id
):
    assert post({"jobs": [item(external_id=external_id)]}).json()["results"][0]["status"] == "created"
    url = job_url(quote(external_id, safe=""))
    headers = {"Authorization": f"Bearer {service_key.plaintext}"}

    got = client.get(url, headers=headers)
    assert got.status_code == 200 and got.json()["external_id"] == external_id

    assert client.delete(url, headers=headers).status_code == 204
    assert not Job.objects.filter(external_id=external_id).exists()
    assert client.get(url, headers=headers).status_code == 404


def test_delete_removes_the_job_and_usage_follows(post, client, bearer, job_url, service_key, acme, acme_key):
    headers = {"Authorization": f"Bearer {service_key.plaintext}"}
    post({"jobs": [item(), item(external_id="j-2")]})

    response = client.delete(job_url("j-1"), headers=headers)

    assert response.status_code == 204
    assert list(Job.objects.values_list("external_id", flat=True)) == ["j-2"]
    assert bearer(acme_key.plaintext, "/api/v1/usage").json()["total_jobs"] == 1
    assert client.delete(job_url("j-1"), headers=headers).status_code == 404


def test_an_unknown_ingestion_path_is_a_json_404(client, service_key, acme):
    headers = {"Authorization": f"Bearer {service_key.plaintext}"}

    response = client.get("/api/v1/ingest/nothing", headers=headers)

    assert response.status_code == 404 and response.json() == {"detail": "No such API endpoint."}


# --- failures -------------------------------------------------------------------------------


def test_a_failing_write_is_a_json_500_and_writes_nothing(post, acme, monkeypatch):
    from usage import ingesting

    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingesting, "jobs_upsert", broken)

    response = post({"jobs": [item(api_key=None)]})

    assert response.status_code == 500
    assert set(response.json()) == {"detail", "error_id"}
    assert not Job.objects.exists() and not StaleMonth.objects.exists()


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row-level deadlocks are PostgreSQL's; SQLite has one writer at a time",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_concurrent_overlapping_batches_and_a_recompute_end_as_a_sequential_run():
    from django.test import Client

    organisations = [organisation_create(name=f"Org {n}", org_id=f"org_c{n}") for n in range(3)]
    for organisation in organisations:
        api_key_create(organisation=organisation, name="some api key")
    secret = service_key_create(name="platform").plaintext
    jobs = [
        item(
            org_id=f"org_c{n % 3}",
            external_id=f"j-{n}",
            created_at=f"2025-0{1 + n % 3}-0{1 + n % 9}T10:00:00Z",
            note_tokens=n,
        )
        for n in range(240)
    ]
    final = [{**job, "status": "failed"} if n % 4 == 0 else job for n, job in enumerate(jobs)]
    rng = random.Random(7)
    batches = []
    for thread in range(6):
        order = final if thread % 2 else jobs  # half the threads send the updates
        batch = order[:]
        rng.shuffle(batch)
        batches.append(batch)
    start = threading.Barrier(len(batches) + 1)

    def send(batch):
        start.wait(timeout=30)
        try:
            client = Client()
            return [
                client.post(
                    INGEST,
                    json.dumps({"jobs": batch[first : first + 80]}),
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {secret}"},
                ).status_code
                for first in range(0, len(batch), 80)
            ]
        finally:
            connection.close()

    def recompute():
        start.wait(timeout=30)
        try:
            for _ in range(3):
                usage_recompute()
        finally:
            connection.close()

    with (
        override_settings(API_INGEST_THROTTLE_RATE="100000/min"),
        concurrent.futures.ThreadPoolExecutor(max_workers=len(batches) + 1) as pool,
    ):
        futures = [pool.submit(send, batch) for batch in batches]
        recomputing = pool.submit(recompute)
        codes = [code for future in futures for code in future.result(timeout=120)]
        recomputing.result(timeout=120)

    assert set(codes) == {200}
    # The final state: one last sequential batch of the final values settles every job.
    response = Client().post(
        INGEST,
        json.dumps({"jobs": final}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200
    assert Job.objects.count() == len(jobs)
    stored_rows = sorted(MonthlyUsage.objects.values_list("organisation_id", "month", "jobs", "note_tokens"))
    result = usage_recompute()
    assert (result.rows_corrected, result.jobs_retiered, result.free_flags_fixed) == (0, 0, 0)
    assert sorted(MonthlyUsage.objects.values_list("organisation_id", "month", "jobs", "note_tokens")) == (
        stored_rows
    )
    assert sum(row[2] for row in stored_rows) == len(jobs)
    assert sum(row[3] for row in stored_rows) == sum(range(len(jobs)))
