"""Bearer API-key authentication, its throttles, and what is (not) counted as an API call."""

import datetime as dt
import logging

import pytest
import time_machine
from rest_framework.test import APIRequestFactory

from accounts import keys
from accounts.models import ApiKey, Organisation
from accounts.services import api_key_create, api_key_revoke
from portal.api.authentication import ApiKeyUser, BearerKeyAuthentication
from usage.calls import api_calls_flush
from usage.models import ApiCallCount

ENDPOINTS = ["/usage", "/api/v1/usage", "/api/v1/ping"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def call(client):
    """``call(path, authorization=None, **extra)``: GET with that Authorization header, if any."""

    def get(path: str, authorization: str | None = None, **extra):
        headers = {} if authorization is None else {"Authorization": authorization}
        return client.get(path, headers=headers, **extra)

    return get


def calls_of(organisation) -> int:
    api_calls_flush()  # with Redis, counts reach the table at a flush
    return sum(ApiCallCount.objects.filter(organisation=organisation).values_list("calls", flat=True))


def _well_formed_unknown_key() -> str:
    return keys.generate_key().plaintext


def _valid_lookup_wrong_secret(plaintext: str) -> str:
    lookup = keys.parse_lookup(plaintext)
    return f"upk_{lookup}_{'A' * 43}"


UNAUTHORISED = {
    "no header": lambda key: None,
    "empty header": lambda key: "",
    "another scheme": lambda key: f"Basic {key}",
    "scheme only": lambda key: "Bearer",
    "scheme and blank": lambda key: "Bearer   ",
    "two tokens": lambda key: f"Bearer {key} extra",
    "no scheme": lambda key: key,
    "not a key": lambda key: "Bearer not-a-key",
    "unknown key": lambda key: f"Bearer {_well_formed_unknown_key()}",
    "wrong secret": lambda key: f"Bearer {_valid_lookup_wrong_secret(key)}",
    "truncated key": lambda key: f"Bearer {key[:-1]}",
    "non-ascii token": lambda key: "Bearer upk_é",
    "token beyond latin-1": lambda key: "Bearer ключ",
}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("case", list(UNAUTHORISED))
def test_a_missing_malformed_or_unknown_key_is_401_with_a_bearer_challenge(acme, acme_key, call, path, case):
    response = call(path, UNAUTHORISED[case](acme_key.plaintext))

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert set(response.json()) == {"detail"}
    assert acme_key.plaintext not in response.content.decode()
    assert calls_of(acme) == 0


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_revoked_key_is_401_from_the_next_request(acme, acme_key, call, path):
    assert call(path, f"Bearer {acme_key.plaintext}").status_code == 200

    api_key_revoke(api_key=acme_key.api_key)
    response = call(path, f"Bearer {acme_key.plaintext}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "Invalid API key."}
    assert calls_of(acme) == 1


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_key_of_an_inactive_organisation_is_403_and_not_a_call(acme, acme_key, call, path):
    Organisation.objects.filter(pk=acme.pk).update(is_active=False)

    response = call(path, f"Bearer {acme_key.plaintext}")

    assert response.status_code == 403
    assert response.json() == {"detail": "This API key's organisation is inactive."}
    assert response["Cache-Control"] == "no-store"
    assert calls_of(acme) == 0


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_a_valid_key_is_accepted_whatever_the_case_of_the_scheme(acme, acme_key, call, scheme):
    response = call("/api/v1/ping", f"{scheme} {acme_key.plaintext}")

    assert response.status_code == 200
    assert response.json() == {"org_id": "org_acme"}
    assert calls_of(acme) == 1


def test_the_authentication_class_puts_the_key_in_request_auth(acme_key):
    request = APIRequestFactory().get("/usage", HTTP_AUTHORIZATION=f"Bearer {acme_key.plaintext}")

    user, auth = BearerKeyAuthentication().authenticate(request)

    assert isinstance(auth, ApiKey) and auth.pk == acme_key.api_key.pk
    assert isinstance(user, ApiKeyUser) and user.is_authenticated
    assert user.organisation.org_id == "org_acme"
    assert BearerKeyAuthentication().authenticate(APIRequestFactory().get("/usage")) is None


def test_last_used_is_written_at_most_once_a_minute(acme_key, call):
    header = f"Bearer {acme_key.plaintext}"
    start = dt.datetime(2025, 3, 15, 12, 0, tzinfo=dt.UTC)

    with time_machine.travel(start, tick=False):
        call("/api/v1/ping", header)
    with time_machine.travel(start + dt.timedelta(seconds=59), tick=False):
        call("/api/v1/ping", header)
    acme_key.api_key.refresh_from_db()
    assert acme_key.api_key.last_used_at == start

    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        call("/api/v1/ping", header)
    acme_key.api_key.refresh_from_db()
    assert acme_key.api_key.last_used_at == start + dt.timedelta(seconds=61)


def test_the_key_check_is_one_indexed_query_and_no_password_hasher(acme_key, django_assert_num_queries):
    request = APIRequestFactory().get("/usage", HTTP_AUTHORIZATION=f"Bearer {acme_key.plaintext}")
    ApiKey.objects.filter(pk=acme_key.api_key.pk).update(last_used_at=dt.datetime.now(dt.UTC))

    with django_assert_num_queries(1):
        BearerKeyAuthentication().authenticate(request)


# Throttling -----------------------------------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after_and_the_429s_count(acme, acme_key, call, settings):
    settings.API_THROTTLE_RATE = "3/min"
    other = api_key_create(organisation=acme, name="other key")
    header = f"Bearer {acme_key.plaintext}"
    moment = dt.datetime(2025, 3, 15, 12, 0, 20, tzinfo=dt.UTC)

    with time_machine.travel(moment, tick=False):
        statuses = [call("/api/v1/ping", header).status_code for _ in range(3)]
        throttled = call("/api/v1/usage", header)
        other_key = call("/api/v1/ping", f"Bearer {other.plaintext}")

    assert statuses == [200, 200, 200]
    assert throttled.status_code == 429
    assert throttled["Retry-After"] == "40"
    assert throttled["Cache-Control"] == "no-store"
    assert "detail" in throttled.json()
    assert other_key.status_code == 200
    assert calls_of(acme) == 5
    with time_machine.travel(moment + dt.timedelta(seconds=40), tick=False):
        assert call("/api/v1/ping", header).status_code == 200


def test_the_default_rate_is_600_a_minute():
    from django.conf import settings as live_settings

    assert live_settings.API_THROTTLE_RATE == "600/min"


def test_failed_authentication_bursts_from_one_address_get_429(acme, acme_key, call, settings):
    settings.API_AUTH_FAILURE_RATE = "5/min"
    bad = f"Bearer {_well_formed_unknown_key()}"
    moment = dt.datetime(2025, 3, 15, 12, 0, 30, tzinfo=dt.UTC)

    with time_machine.travel(moment, tick=False):
        failures = [call("/usage", bad).status_code for _ in range(5)]
        blocked = call("/usage", bad)
        blocked_valid = call("/usage", f"Bearer {acme_key.plaintext}")
        elsewhere = call("/usage", bad, REMOTE_ADDR="10.0.0.9")
        forged = call("/usage", bad, HTTP_X_FORWARDED_FOR="10.0.0.10")

    assert failures == [401] * 5
    assert blocked.status_code == 429
    assert blocked["Retry-After"] == "30"
    assert blocked.json() == {
        "detail": "Too many failed authentications from this address. Expected available in 30 seconds."
    }
    assert blocked_valid.status_code == 200  # only failures are limited (issue 12)
    assert elsewhere.status_code == 401
    assert forged.status_code == 429  # X-Forwarded-For is not trusted by default
    assert calls_of(acme) == 1
    with time_machine.travel(moment + dt.timedelta(seconds=30), tick=False):
        assert call("/usage", bad).status_code == 401


def test_bad_keys_from_an_address_never_lock_out_a_valid_key_from_it(acme, acme_key, call):
    """Issue 12: 30 bad bearer requests (the default budget) and more, then a valid key: it passes."""
    bad = f"Bearer {_well_formed_unknown_key()}"
    moment = dt.datetime(2025, 3, 15, 12, 0, 10, tzinfo=dt.UTC)

    with time_machine.travel(moment, tick=False):
        failures = [call("/api/v1/ping", bad).status_code for _ in range(35)]
        valid = [call("/api/v1/ping", f"Bearer {acme_key.plaintext}").status_code for _ in range(3)]
        still_blocked = call("/api/v1/ping", bad)

    assert failures == [401] * 30 + [429] * 5
    assert valid == [200] * 3
    assert still_blocked.status_code == 429
    assert calls_of(acme) == 3


def test_successful_requests_do_not_use_the_failure_budget(acme_key, call, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"

    statuses = [call("/api/v1/ping", f"Bearer {acme_key.plaintext}").status_code for _ in range(5)]

    assert statuses == [200] * 5


def test_no_api_key_is_ever_logged(acme_key, call, caplog, settings):
    settings.API_AUTH_FAILURE_RATE = "1/min"
    unknown = _well_formed_unknown_key()

    with caplog.at_level(logging.DEBUG):
        call("/usage", f"Bearer {acme_key.plaintext}")
        call("/usage", f"Bearer {unknown}")
        call("/usage", f"Bearer {unknown}")
        call("/nowhere", f"Bearer {acme_key.plaintext}")

    assert caplog.records
    assert acme_key.plaintext not in caplog.text
    assert unknown not in caplog.text


def test_on_postgresql_the_key_lookup_is_a_prepared_statement_and_revocation_still_holds(acme_key, call):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    header = f"Bearer {acme_key.plaintext}"
    assert [call("/api/v1/ping", header).status_code for _ in range(2)] == [200, 200]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]

    assert any('FROM "accounts_apikey" k' in statement for statement in prepared)
    api_key_revoke(api_key=acme_key.api_key)
    assert call("/api/v1/ping", header).status_code == 401


def test_a_key_signed_under_a_fallback_secret_works_on_the_api_and_is_rehashed(acme, call, settings):
    created = api_key_create(organisation=acme, name="old secret")
    revoked = api_key_create(organisation=acme, name="old and revoked")
    api_key_revoke(api_key=revoked.api_key)
    old_digest = created.api_key.digest
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-that-is-long-enough-for-the-test-0123456789"

    assert call("/api/v1/ping", f"Bearer {created.plaintext}").status_code == 200
    assert ApiKey.objects.get(pk=created.api_key.pk).digest != old_digest
    assert call("/api/v1/ping", f"Bearer {created.plaintext}").status_code == 200  # under the new one
    assert call("/api/v1/ping", f"Bearer {revoked.plaintext}").status_code == 401
    settings.SECRET_KEY_FALLBACKS = []
    assert call("/api/v1/ping", f"Bearer {revoked.plaintext}").status_code == 401
