"""Retries: which failures, how many, and how long the client waits between attempts."""

import datetime as dt
import email.utils

import httpx
import pytest

from fakes import MONTHLY_TEXT, json_response
from usage_portal_client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from usage_portal_client._retry import parse_retry_after, retry_delay

OK = json_response(200, MONTHLY_TEXT)


def throttled(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return json_response(429, {"detail": "Request was throttled."}, headers)


def unavailable() -> httpx.Response:
    return json_response(503, {"detail": "The database is unavailable."})


def test_a_429_is_retried_after_exactly_retry_after(client, portal, clock):
    portal.answer(throttled("7"), OK)

    usage = client.usage.get()

    assert usage.totals.jobs == 108
    assert len(portal.requests) == 2
    assert clock.sleeps == [7.0]


def test_retry_after_up_to_a_minute_is_honoured(client, portal, clock):
    portal.answer(throttled("60"), OK)

    client.usage.get()

    assert clock.sleeps == [60.0]


def test_retry_after_over_a_minute_is_raised_at_once(client, portal, clock):
    portal.answer(throttled("61"))

    with pytest.raises(RateLimitError) as caught:
        client.usage.get()

    assert caught.value.retry_after == 61.0
    assert len(portal.requests) == 1
    assert clock.sleeps == []


def test_retry_after_as_an_http_date_is_measured_from_now(client, portal, clock):
    when = dt.datetime.fromtimestamp(clock.now + 5, tz=dt.UTC)
    portal.answer(throttled(email.utils.format_datetime(when, usegmt=True)), OK)

    client.usage.get()

    assert clock.sleeps == [5.0]


def test_a_5xx_is_retried_with_exponential_backoff(make_client, portal, clock):
    portal.answer(unavailable(), unavailable(), unavailable(), OK)

    make_client(max_retries=3).usage.get()

    assert len(portal.requests) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_shortened_by_jitter(make_client, portal, clock):
    clock.jitter = 0.999
    portal.answer(unavailable(), unavailable(), OK)

    make_client(max_retries=2).usage.get()

    first, second = clock.sleeps
    assert 0.375 < first < 0.5
    assert 0.75 < second < 1.0


def test_a_5xx_with_retry_after_waits_as_asked(client, portal, clock):
    portal.answer(json_response(503, {"detail": "Down for a moment."}, {"Retry-After": "3"}), OK)

    client.usage.get()

    assert clock.sleeps == [3.0]


def test_after_max_retries_the_last_error_is_raised(client, portal, clock):
    portal.answer(unavailable(), unavailable(), json_response(500, {"detail": "Boom.", "error_id": "e3"}))

    with pytest.raises(InternalServerError) as caught:
        client.usage.get()

    assert caught.value.error_id == "e3"
    assert len(portal.requests) == 3  # the first attempt and max_retries=2 retries
    assert clock.sleeps == [0.5, 1.0]


def test_max_retries_zero_never_retries(make_client, portal, clock):
    portal.answer(unavailable())

    with pytest.raises(InternalServerError):
        make_client(max_retries=0).usage.get()

    assert len(portal.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
    ],
)
def test_client_errors_are_never_retried(client, portal, clock, status, error_class):
    portal.answer(json_response(status, {"detail": "No."}, {"Retry-After": "1"}))

    with pytest.raises(error_class):
        client.usage.get()

    assert len(portal.requests) == 1
    assert clock.sleeps == []


def test_connection_errors_are_retried(client, portal, clock):
    portal.answer(httpx.ConnectError("refused"), httpx.RemoteProtocolError("dropped"), OK)

    client.usage.get()

    assert len(portal.requests) == 3
    assert clock.sleeps == [0.5, 1.0]


def test_timeouts_are_retried_then_raised(client, portal, clock):
    portal.answer(httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("slow"))

    with pytest.raises(APITimeoutError):
        client.usage.get()

    assert len(portal.requests) == 3
    assert clock.sleeps == [0.5, 1.0]


def test_a_failure_that_would_repeat_is_not_retried(client, portal, clock):
    portal.answer(httpx.UnsupportedProtocol("no such scheme"))

    with pytest.raises(APIConnectionError):
        client.usage.get()

    assert len(portal.requests) == 1


def test_every_attempt_is_the_same_request(client, portal):
    portal.answer(throttled("0"), OK)

    client.usage.get(start_month="2025-01")

    first, second = portal.requests
    assert first.url == second.url
    assert first.headers["Authorization"] == second.headers["Authorization"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("nan", None),
        ("0", 0.0),
        ("2.5", 2.5),
        (" 12 ", 12.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past
    ],
)
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header, now=1_750_000_000.0) == seconds


def test_retry_delay_doubles_up_to_its_cap():
    delays = [retry_delay(retries_done=n, retry_after=None, jitter=0.0) for n in range(7)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
