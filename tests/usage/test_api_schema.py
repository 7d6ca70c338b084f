"""The OpenAPI schema: valid, documented, served without a CDN, and the API conforms to it (Schemathesis)."""

import datetime as dt

import pytest
import schemathesis
import yaml
from django.core import signals
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.services import api_key_create, api_key_revoke


def test_the_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    document = yaml.safe_load(target.read_text())
    assert set(document["paths"]) == {
        "/usage",
        "/api/v1/usage",
        "/api/v1/jobs",
        "/api/v1/ping",
        "/api/v1/ingest/jobs",
        "/api/v1/ingest/jobs/{org_id}/{external_id}",
    }


@pytest.fixture
def document(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_both_endpoints_are_documented_with_parameters_auth_errors_and_examples(document):
    monthly = document["paths"]["/usage"]["get"]
    all_time = document["paths"]["/api/v1/usage"]["get"]

    assert document["components"]["securitySchemes"]["ApiKeyBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["ApiKeyBearer"]["description"],
    }
    for operation in (monthly, all_time):
        assert operation["security"] == [{"ApiKeyBearer": []}]
        assert {"200", "401", "403", "429", "500"} <= set(operation["responses"])
        assert operation["responses"]["200"]["content"]["application/json"]["examples"]
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert {parameter["name"] for parameter in monthly["parameters"]} == {"start_month", "end_month"}
    assert "400" in monthly["responses"]


def test_the_docs_explain_the_inconsistent_contract_example(document):
    description = document["paths"]["/usage"]["get"]["description"]

    assert "does not add up" in description
    assert "108 jobs while its only month counts 107" in description
    assert "exactly the sum of the months" in description
    assert "plus the jobs submitted without a key" in description


def test_the_docs_page_loads_swagger_ui_from_the_portal_not_a_cdn(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_the_schema_and_docs_need_no_key_and_are_not_calls(client):
    from usage.models import ApiCallCount

    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
    assert ApiCallCount.objects.count() == 0


# Schemathesis ---------------------------------------------------------------------------------


@pytest.fixture
def in_process_connections():
    """Keep the test's database connection open across in-process WSGI requests.

    The WSGI handler closes "old" connections at the start and end of each request, which would
    end the test's transaction; Django's test client disconnects the same handler.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzzed_key(acme, globex, job, add_jobs, settings):
    """A key of Acme with recent usage (two keys, one revoked, web jobs); Globex has usage too."""
    settings.API_THROTTLE_RATE = "1000000/min"
    settings.API_AUTH_FAILURE_RATE = "1000000/min"
    key = api_key_create(organisation=acme, name="fuzz key")
    old = api_key_create(organisation=acme, name="old key")
    outsider = api_key_create(organisation=globex, name="globex key")
    now = dt.datetime.now(dt.UTC)
    add_jobs(
        [
            *(
                job(acme, api_key=key.api_key, created_at=now - dt.timedelta(days=day))
                for day in range(0, 90, 7)
            ),
            job(acme, api_key=old.api_key, created_at=now - dt.timedelta(days=40), language="Tamil"),
            job(acme, created_at=now - dt.timedelta(days=3)),
            job(globex, api_key=outsider.api_key, created_at=now - dt.timedelta(days=3)),
        ]
    )
    api_key_revoke(api_key=old.api_key)
    return key


# Loaded once, in-process, from the portal's own /api/schema/ (no server, no database needed).
# ``schemathesis.pytest.from_fixture`` would defer this to a fixture, but it fails on pytest 9.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
# SPEC: other query parameters are ignored, so an extra one is not invalid input.
schema.config.generation.update(allow_extra_parameters=False)

_fuzzed = {}


@schema.auth(refresh_interval=None)
class FuzzedKeyAuth:
    """Sends the current test's key, so Schemathesis knows which requests carry valid credentials."""

    def get(self, case, context):
        return _fuzzed.get("key", "not-set-until-the-test-runs")

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_conforms_to_its_schema(case, fuzzed_key, in_process_connections):
    """No 5xx, and every response (status, headers, body) as the schema documents it."""
    _fuzzed["key"] = fuzzed_key.plaintext
    response = case.call_and_validate(
        # A well-formed month can still be refused (after the current month, start after end,
        # over 120 months): rules of the clock and of both parameters together, which OpenAPI
        # cannot express. The documented 400 is checked like every other response.
        excluded_checks=[positive_data_acceptance],
    )

    assert response.status_code < 500
    assert response.headers["cache-control"] == ["no-store"]


def test_the_ingestion_endpoints_are_documented_with_service_key_auth_and_examples(document):
    post = document["paths"]["/api/v1/ingest/jobs"]["post"]
    one = document["paths"]["/api/v1/ingest/jobs/{org_id}/{external_id}"]

    assert document["components"]["securitySchemes"]["ServiceKeyBearer"]["scheme"] == "bearer"
    for operation in (post, one["get"], one["delete"]):
        assert operation["security"] == [{"ServiceKeyBearer": []}]
        assert {"401", "403", "429", "500"} <= set(operation["responses"])
    assert {"200", "400", "413", "415"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["examples"]
    assert post["responses"]["200"]["content"]["application/json"]["examples"]
    assert one["get"]["responses"]["200"]["content"]["application/json"]["examples"]
    assert set(one["delete"]["responses"]) >= {"204", "404"}
