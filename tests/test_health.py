"""/healthz and /readyz: no key, no data, no-store; /readyz names the dependency that failed."""

from unittest import mock

import pytest
from django.core.cache import cache
from django.db import OperationalError, connections

OK = {"database": "ok", "cache": "ok", "broker": "ok"}


def _assert_probe_headers(response):
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]


def test_healthz_answers_without_the_database_or_a_key(client):
    # No ``db`` fixture: pytest-django refuses any database access here.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    _assert_probe_headers(response)


def test_healthz_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_is_ok_when_every_dependency_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == OK
    _assert_probe_headers(response)


@pytest.mark.django_db
def test_readyz_names_the_cache_when_it_is_down(client):
    with (
        mock.patch.object(cache, "set", side_effect=ConnectionError("cache down")),
        mock.patch.object(cache, "get", side_effect=ConnectionError("cache down")),
    ):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {**OK, "cache": "unavailable", "failed": "cache"}
    _assert_probe_headers(response)


@pytest.mark.django_db
def test_readyz_names_the_cache_when_it_loses_values(client):
    with mock.patch.object(cache, "get", return_value=None):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == "cache"


@pytest.mark.django_db
def test_readyz_names_the_broker_when_it_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {**OK, "broker": "unavailable", "failed": "broker"}


@pytest.mark.django_db
def test_readyz_names_the_filesystem_broker_when_its_folder_is_unusable(client, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(blocker / "queue")}

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == "broker"


@pytest.mark.django_db
def test_readyz_names_the_database_when_it_is_down(client):
    wrapper = type(connections["default"])
    with mock.patch.object(wrapper, "cursor", side_effect=OperationalError("connection refused")):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {**OK, "database": "unavailable", "failed": "database"}
    text = response.content.decode()
    assert "connection refused" not in text and "Traceback" not in text
