"""Every error status raises its own class, carrying the portal's JSON."""

import httpx
import pytest

from fakes import json_response
from usage_portal_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UsagePortalError,
)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIStatusError),
        (409, APIStatusError),
        (413, RequestTooLargeError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (504, InternalServerError),
    ],
)
def test_each_status_raises_its_class(make_client, portal, status, error_class):
    portal.answer(*[json_response(status, {"detail": "Nope."})] * 3)
    client = make_client(max_retries=0)

    with pytest.raises(error_class) as caught:
        client.usage.get()

    error = caught.value
    assert type(error) is error_class
    assert isinstance(error, APIStatusError)
    assert isinstance(error, UsagePortalError)
    assert error.status_code == status
    assert error.body == {"detail": "Nope."}
    assert error.detail == "Nope."
    assert error.response.status_code == status
    assert str(error).startswith(f"{status} ")
    assert "Nope." in str(error)


def test_the_hierarchy_is_the_documented_one():
    assert issubclass(APIConnectionError, UsagePortalError)
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(APIStatusError, UsagePortalError)
    for error_class in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        RequestTooLargeError,
        RateLimitError,
        InternalServerError,
    ):
        assert issubclass(error_class, APIStatusError)
    assert not issubclass(APIStatusError, APIConnectionError)


def test_a_bad_month_names_the_parameter(client, portal):
    body = {
        "detail": "Invalid query parameter: start_month.",
        "start_month": ["'2025-13' is not a month: expected YYYY-MM, e.g. 2025-03."],
    }
    portal.answer(json_response(400, body))

    with pytest.raises(BadRequestError) as caught:
        client.usage.get(start_month="2025-13")

    error = caught.value
    assert error.param == "start_month"
    assert error.errors == {"start_month": ["'2025-13' is not a month: expected YYYY-MM, e.g. 2025-03."]}
    assert error.detail == "Invalid query parameter: start_month."
    assert str(error) == (
        "400 Bad Request: Invalid query parameter: start_month. | "
        "start_month: '2025-13' is not a month: expected YYYY-MM, e.g. 2025-03."
    )


def test_a_400_without_a_parameter_has_no_param(client, portal):
    portal.answer(json_response(400, {"detail": "Request body is not JSON."}))

    with pytest.raises(BadRequestError) as caught:
        client.usage.get()

    assert caught.value.param is None
    assert caught.value.errors == {}


def test_a_500_carries_its_error_id(make_client, portal):
    portal.answer(json_response(500, {"detail": "Internal server error.", "error_id": "0f8c2b1e"}))

    with pytest.raises(InternalServerError) as caught:
        make_client(max_retries=0).usage.get()

    assert caught.value.error_id == "0f8c2b1e"
    assert caught.value.param is None
    assert "error_id 0f8c2b1e" in str(caught.value)


def test_a_429_carries_retry_after(make_client, portal):
    portal.answer(json_response(429, {"detail": "Request was throttled."}, {"Retry-After": "12"}))

    with pytest.raises(RateLimitError) as caught:
        make_client(max_retries=0).usage.get()

    assert caught.value.retry_after == 12.0


def test_a_429_without_retry_after_says_none(make_client, portal):
    portal.answer(json_response(429, {"detail": "Request was throttled."}))

    with pytest.raises(RateLimitError) as caught:
        make_client(max_retries=0).usage.get()

    assert caught.value.retry_after is None


def test_an_error_body_that_is_not_json_is_kept_as_text(make_client, portal):
    portal.answer(httpx.Response(502, text="<html><body>Bad gateway</body></html>"))

    with pytest.raises(InternalServerError) as caught:
        make_client(max_retries=0).usage.get()

    error = caught.value
    assert error.body == "<html><body>Bad gateway</body></html>"
    assert error.detail is None
    assert str(error) == "502 Bad Gateway: <html><body>Bad gateway</body></html>"


def test_a_redirect_is_not_followed_and_is_an_error(client, portal):
    portal.answer(httpx.Response(301, headers={"Location": "https://elsewhere.test/usage"}))

    with pytest.raises(APIStatusError) as caught:
        client.usage.get()

    assert caught.value.status_code == 301
    assert len(portal.requests) == 1


def test_a_refused_connection_is_a_connection_error(make_client, portal):
    portal.answer(httpx.ConnectError("connection refused"))

    with pytest.raises(APIConnectionError) as caught:
        make_client(max_retries=0).usage.get()

    assert type(caught.value) is APIConnectionError
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.request.url.path == "/usage"


def test_a_timeout_is_a_timeout_error(make_client, portal):
    portal.answer(httpx.ReadTimeout("timed out"))

    with pytest.raises(APITimeoutError) as caught:
        make_client(max_retries=0).usage.get()

    assert isinstance(caught.value, APIConnectionError)
    assert "timed out" in str(caught.value)


def test_the_api_key_never_appears_in_an_error(client, portal):
    portal.answer(json_response(401, {"detail": "Invalid API key."}))

    with pytest.raises(AuthenticationError) as caught:
        client.usage.get()

    assert client.api_key not in str(caught.value)
    assert client.api_key not in repr(client)
