"""Request and response plumbing shared by every page and endpoint.

- ``RejectNulMiddleware``: a NUL character anywhere in the path or the query string of a page is
  refused with a 400 page before any view runs. PostgreSQL cannot store or compare text holding
  NUL (psycopg raises on it), so such a value would otherwise turn a lookup into a 500. The REST
  API is left to its views: a request with a valid key is an API call whatever its answer, so
  they validate their parameters themselves (a 400 naming the parameter) and count the call.
- ``SecurityHeadersMiddleware``: the Content-Security-Policy, Permissions-Policy and
  Referrer-Policy of every response.
"""

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse
from django.views.defaults import bad_request

API_PATH_PREFIXES = ("/api/", "/usage")


def is_api_path(path: str) -> bool:
    """True for the REST API's paths, which answer errors as JSON rather than pages."""
    return path == "/usage" or path.startswith(API_PATH_PREFIXES)


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
