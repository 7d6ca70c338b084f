"""Errors are JSON, never a traceback; unexpected ones carry an error id that is in the log."""

import logging
import re

import pytest

import usage.api.views
from usage.calls import api_calls_flush
from usage.models import ApiCallCount


@pytest.fixture
def broken_all_time(monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(usage.api.views, "usage_all_time", explode)


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_a_json_500_with_an_error_id_in_the_log(
    acme_key, bearer, broken_all_time, caplog, settings, debug
):
    settings.DEBUG = debug

    with caplog.at_level(logging.ERROR, logger="portal.api"):
        response = bearer(acme_key.plaintext, "/api/v1/usage")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"detail", "error_id"}
    assert re.fullmatch(r"[0-9a-f]{32}", body["error_id"])
    text = response.content.decode()
    assert "Traceback" not in text and "internal detail" not in text and "RuntimeError" not in text
    (record,) = [record for record in caplog.records if record.name == "portal.api"]
    assert body["error_id"] in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "Traceback" in caplog.text and "internal detail" in caplog.text
    assert acme_key.plaintext not in caplog.text


def test_the_failing_request_is_still_a_call(acme_key, bearer, broken_all_time):
    bearer(acme_key.plaintext, "/api/v1/usage")

    api_calls_flush()  # with Redis, counts reach the table at a flush
    assert ApiCallCount.objects.get(api_key=acme_key.api_key).calls == 1


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*", "application/json; indent=4"])
def test_the_answer_is_json_whatever_accept_says(acme_key, bearer, accept):
    response = bearer(acme_key.plaintext, "/api/v1/usage", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["org_id"] == "org_acme"


def test_unknown_api_paths_are_a_json_404(acme_key, bearer, client):
    with_key = bearer(acme_key.plaintext, "/api/v1/nothing")
    without_key = client.get("/api/v1/nothing")

    assert with_key.status_code == 404
    assert with_key.json() == {"detail": "No such API endpoint."}
    assert without_key.status_code == 401


def test_a_wrong_method_is_a_json_405(acme_key, client):
    response = client.post("/usage", headers={"Authorization": f"Bearer {acme_key.plaintext}"})

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}
