"""A database that is down is a 503 (JSON on the API, a plain page on the pages), never a
traceback or a 500."""

import pytest
from django.db import InterfaceError, OperationalError
from django.urls import reverse

import accounts.views
import usage.api.views

DETAIL = "The database is unavailable; try again shortly."


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
@pytest.mark.parametrize("debug", [False, True])
def test_the_api_answers_a_json_503_with_retry_after(acme_key, bearer, monkeypatch, settings, error, debug):
    settings.DEBUG = debug

    def down(**kwargs):
        raise error("server closed the connection unexpectedly (secret detail)")

    monkeypatch.setattr(usage.api.views, "usage_all_time", down)

    response = bearer(acme_key.plaintext, "/api/v1/usage")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"detail": DETAIL}
    assert "secret detail" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_a_page_answers_a_plain_503_page(client, owner, monkeypatch, settings, debug):
    settings.DEBUG = debug
    client.force_login(owner)

    def down(**kwargs):
        raise OperationalError("connection refused (secret detail)")

    monkeypatch.setattr(accounts.views, "membership_list", down)

    response = client.get(reverse("dashboard"))

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "no-store" in response["Cache-Control"]
    text = response.content.decode()
    assert "Temporarily unavailable" in text
    assert "secret detail" not in text and "Traceback" not in text


@pytest.mark.django_db
def test_other_page_errors_are_not_taken_for_a_database_outage(client, owner, monkeypatch):
    client.raise_request_exception = False
    client.force_login(owner)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(accounts.views, "membership_list", broken)

    assert client.get(reverse("dashboard")).status_code == 500
