"""The page middlewares are skipped on the key-authenticated REST API and run everywhere else;
the security headers are on every response."""

import pytest
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.module_loading import import_string

from portal.middleware import is_key_api_path, pages_only


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/usage", True),
        ("/usage/", True),
        ("/usage/anything", True),
        ("/api/v1/ping", True),
        ("/api/v1/usage", True),
        ("/api/v2/usage", True),
        ("/api/", True),
        ("/api/v1/ingest/jobs", True),
        ("/api/schema/", False),
        ("/api/schema", False),
        ("/api/docs/", False),
        ("/usages", False),
        ("/dashboard/", False),
        ("/orgs/org_acme/usage/", False),
        ("/accounts/login/", False),
        ("/admin/", False),
        ("/static/js/portal.js", False),
    ],
)
def test_which_paths_are_the_key_authenticated_api(path, api):
    assert is_key_api_path(path) is api


class Recording:
    """A middleware that records what ran: its call, and its view and exception hooks."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.ran: list[str] = []

    def __call__(self, request):
        self.ran.append("call")
        return self.get_response(request)

    def process_view(self, request, view, args, kwargs):
        self.ran.append("view")

    def process_exception(self, request, exception):
        self.ran.append("exception")


@pytest.mark.parametrize(
    ("path", "runs"), [("/api/v1/ping", False), ("/usage", False), ("/dashboard/", True)]
)
def test_a_pages_only_middleware_passes_the_api_straight_on(path, runs):
    middleware = pages_only(Recording)(lambda request: HttpResponse("answer"))
    request = RequestFactory().get(path)

    response = middleware(request)
    middleware.process_view(request, None, (), {})
    middleware.process_exception(request, ValueError())

    assert response.content == b"answer"
    assert middleware.ran == (["call", "view", "exception"] if runs else [])


def test_the_wrapped_middlewares_are_still_what_djangos_checks_look_for():
    classes = [import_string(path) for path in settings.MIDDLEWARE]

    for required in (SessionMiddleware, AuthenticationMiddleware, MessageMiddleware):
        assert any(issubclass(found, required) for found in classes)


def test_the_api_skips_sessions_and_still_carries_the_security_headers(client, acme_key, member):
    client.force_login(member)

    api = client.get("/api/v1/ping", headers={"Authorization": f"Bearer {acme_key.plaintext}"})
    page = client.get("/dashboard/")

    assert api.status_code == 200
    assert not hasattr(api.wsgi_request, "session")
    assert not hasattr(api.wsgi_request, "_messages")
    assert hasattr(page.wsgi_request, "session")
    assert page.wsgi_request.user == member
    for header in ("Content-Security-Policy", "Permissions-Policy", "Referrer-Policy", "X-Frame-Options"):
        assert api[header] == page[header]
    assert api["X-Content-Type-Options"] == "nosniff"


def test_a_session_alone_is_not_an_api_key(client, member):
    client.force_login(member)

    response = client.get("/api/v1/ping")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_the_api_checks_the_host_and_sends_its_length(client, acme_key):
    header = {"Authorization": f"Bearer {acme_key.plaintext}"}

    answered = client.get("/api/v1/ping", headers=header)
    refused = client.get("/api/v1/ping", headers=header, HTTP_HOST="evil.example")

    assert answered["Content-Length"] == str(len(answered.content))
    assert refused.status_code == 400
