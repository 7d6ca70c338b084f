"""Configuration: key and portal from arguments or the environment, timeouts, connections."""

import httpx
import pytest

from fakes import ALL_TIME_TEXT, FakePortal, json_response
from usage_portal_client import AsyncClient, Client, UsagePortalError


def mocked(portal: FakePortal) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(portal))


def test_key_and_portal_come_from_the_environment(monkeypatch, portal):
    monkeypatch.setenv("USAGE_PORTAL_API_KEY", "upk_from_env")
    monkeypatch.setenv("USAGE_PORTAL_BASE_URL", "https://usage.example.com/")
    portal.answer(json_response(200, ALL_TIME_TEXT))

    client = Client(http_client=mocked(portal))
    client.usage.all_time()

    assert client.api_key == "upk_from_env"
    assert client.base_url == "https://usage.example.com"
    assert str(portal.requests[0].url) == "https://usage.example.com/api/v1/usage"
    assert portal.requests[0].headers["Authorization"] == "Bearer upk_from_env"


def test_arguments_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("USAGE_PORTAL_API_KEY", "upk_from_env")
    monkeypatch.setenv("USAGE_PORTAL_BASE_URL", "https://usage.example.com")

    client = Client("upk_given", "http://localhost:9000")

    assert (client.api_key, client.base_url) == ("upk_given", "http://localhost:9000")


def test_the_default_portal_is_the_local_one(monkeypatch):
    monkeypatch.setenv("USAGE_PORTAL_API_KEY", "upk_from_env")

    assert Client().base_url == "http://127.0.0.1:8000"
    assert AsyncClient().base_url == "http://127.0.0.1:8000"


def test_a_base_url_with_a_path_keeps_it(portal):
    portal.answer(json_response(200, ALL_TIME_TEXT))

    Client("upk_x", "https://example.com/portal/", http_client=mocked(portal)).usage.all_time()

    assert str(portal.requests[0].url) == "https://example.com/portal/api/v1/usage"


@pytest.mark.parametrize("client_class", [Client, AsyncClient])
@pytest.mark.parametrize("environment", [None, ""])
def test_no_key_is_an_error_at_once(monkeypatch, client_class, environment):
    if environment is not None:
        monkeypatch.setenv("USAGE_PORTAL_API_KEY", environment)

    with pytest.raises(UsagePortalError, match="USAGE_PORTAL_API_KEY"):
        client_class()


def test_a_base_url_without_a_scheme_is_refused():
    with pytest.raises(UsagePortalError, match="http:// or https://"):
        Client("upk_x", "portal.example.com")


def test_negative_max_retries_is_refused():
    with pytest.raises(ValueError, match="max_retries"):
        Client("upk_x", max_retries=-1)


def test_the_timeout_applies_to_every_request(portal):
    portal.answer(json_response(200, ALL_TIME_TEXT), json_response(200, ALL_TIME_TEXT))

    Client("upk_x", timeout=4.5, http_client=mocked(portal)).usage.all_time()
    Client("upk_x", timeout=httpx.Timeout(2.0, connect=1.0), http_client=mocked(portal)).usage.all_time()

    assert portal.requests[0].extensions["timeout"] == {
        "connect": 4.5,
        "read": 4.5,
        "write": 4.5,
        "pool": 4.5,
    }
    assert portal.requests[1].extensions["timeout"] == {
        "connect": 1.0,
        "read": 2.0,
        "write": 2.0,
        "pool": 2.0,
    }


def test_the_client_closes_only_connections_it_opened():
    own = Client("upk_x")
    with own:
        pass
    assert own._http.is_closed

    given = httpx.Client()
    with Client("upk_x", http_client=given):
        pass
    assert not given.is_closed
    given.close()
