"""Request and response plumbing shared by every page and endpoint.

- ``RejectNulMiddleware``: a NUL character anywhere in the path or the query string of a page is
  refused with a 400 page before any view runs. PostgreSQL cannot store or compare text holding
  NUL (psycopg raises on it), so such a value would otherwise turn a lookup into a 500. The REST
  API is left to its views: a request with a valid key is an API call whatever its answer, so
  they validate their parameters themselves (a 400 naming the parameter) and count the call.
- ``DatabaseUnavailableMiddleware``: a page whose view fails because the database is down (or
  dropped its connection) answers a plain 503 page (``templates/503.html``) with ``Retry-After``
  instead of a 500, and the broken connection is dropped so the next request reconnects.
- ``SecurityHeadersMiddleware``: the Content-Security-Policy, Permissions-Policy and
  Referrer-Policy of every response.
- The page middlewares (static files, sessions, authentication, messages) are wrapped by
  ``pages_only``: on the key-authenticated REST API (``/usage``, ``/api/…`` but the schema and
  the docs) they pass the request straight on. The API authenticates with a Bearer key only, so
  none of them has anything to do there, and skipping them is a sizeable share of a request's
  CPU. The security middlewares, CSRF (the API's views are exempt; Django's deployment check
  wants it listed as itself) and ``CommonMiddleware`` (the Host check against ``ALLOWED_HOSTS``,
  ``Content-Length``) run for every path.
"""

import logging
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.views.defaults import bad_request
from whitenoise.middleware import WhiteNoiseMiddleware

from portal.health import (
    DATABASE_UNAVAILABLE_DETAIL,
    DATABASE_UNAVAILABLE_ERRORS,
    RETRY_AFTER_SECONDS,
    database_connections_reset,
)

logger = logging.getLogger("portal")

API_PATH_PREFIXES = ("/api/", "/usage")


def is_api_path(path: str) -> bool:
    """True for the REST API's paths, which answer errors as JSON rather than pages."""
    return path == "/usage" or path.startswith(API_PATH_PREFIXES)


def is_key_api_path(path: str) -> bool:
    """True for the paths answered by the key-authenticated REST API: ``/usage``, ``/usage/…`` and
    ``/api/…``, but not the schema and the docs (``/api/schema``, ``/api/docs``), which are pages."""
    if path == "/usage" or path.startswith("/usage/"):
        return True
    return path.startswith("/api/") and not path.startswith(("/api/schema", "/api/docs"))


def pages_only(middleware_class: type) -> type:
    """``middleware_class``, except on the key-authenticated REST API (``is_key_api_path``), where it
    passes the request straight on and its view and exception hooks do nothing.

    A subclass, so Django's checks that look for the session, authentication and messages
    middlewares still find them.
    """

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_key_api_path(request.path_info):
            return self.get_response(request)
        return middleware_class.__call__(self, request)

    namespace = {"__call__": __call__, "__doc__": pages_only.__doc__, "async_capable": False}
    for hook in ("process_view", "process_exception"):
        if hasattr(middleware_class, hook):

            def skipped(self, request, *args, _hook=hook):
                if is_key_api_path(request.path_info):
                    return None
                return getattr(middleware_class, _hook)(self, request, *args)

            namespace[hook] = skipped
    if hasattr(middleware_class, "process_template_response"):
        raise TypeError(f"pages_only does not wrap template-response hooks ({middleware_class.__name__})")
    return type(f"PagesOnly{middleware_class.__name__}", (middleware_class,), namespace)


PagesOnlyWhiteNoiseMiddleware = pages_only(WhiteNoiseMiddleware)
PagesOnlySessionMiddleware = pages_only(SessionMiddleware)
PagesOnlyAuthenticationMiddleware = pages_only(AuthenticationMiddleware)
PagesOnlyMessageMiddleware = pages_only(MessageMiddleware)


class RejectNulMiddleware:
    """Answer a 400 page to any page request whose path or query holds NUL (the API validates
    its own parameters, see the module's docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path_info):
            return self.get_response(request)
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or b"\x00" in unquote_to_bytes(query.replace("+", " ")):
            return bad_request(request, exception=None)
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A 503 (page, or JSON on the API) rather than a 500 when a view meets a database that is
    down; the API's own views answer it in ``portal.api.exceptions``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE_ERRORS):
            return None
        logger.warning(
            "Database unavailable on %s %s: %s",
            request.method,
            request.path,
            exception.__class__.__name__,
            exc_info=exception,
        )
        database_connections_reset()
        if is_api_path(request.path_info):
            response = JsonResponse({"detail": DATABASE_UNAVAILABLE_DETAIL}, status=503)
        else:
            # Rendered without the request: its context processors could need the database.
            response = HttpResponse(loader.get_template("503.html").render(), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # Style attributes size the pages' bars; no stylesheet or script comes from elsewhere.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"


class SecurityHeadersMiddleware:
    """Add a Content-Security-Policy (no inline script anywhere, Swagger UI included: it is
    served as separate script files), a Permissions-Policy and a Referrer-Policy to every
    response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
