"""The exceptions of the client: one base class, one class per way a request can fail.

::

    UsagePortalError                 anything this package raises
    ├── APIConnectionError           no HTTP answer (refused, reset, DNS, TLS…)
    │   └── APITimeoutError          no answer within the timeout
    └── APIStatusError               an HTTP answer with status >= 400 (or an unexpected 3xx)
        ├── BadRequestError          400 (``.param`` names the offending parameter)
        ├── AuthenticationError      401
        ├── PermissionDeniedError    403
        ├── NotFoundError            404
        ├── RequestTooLargeError     413
        ├── RateLimitError           429 (``.retry_after``)
        └── InternalServerError      5xx

A status without a class of its own (405, 409, …) raises ``APIStatusError`` itself.
"""

from __future__ import annotations

from typing import Any

import httpx

from . import _json
from ._retry import parse_retry_after

_RESERVED_KEYS = frozenset({"detail", "error_id"})


class UsagePortalError(Exception):
    """Base class of every exception raised by ``usage_portal_client``."""


class APIConnectionError(UsagePortalError):
    """The request got no HTTP answer: the connection was refused or dropped, DNS or TLS failed.

    ``request`` is the request that failed; the underlying ``httpx`` error is ``__cause__``.
    """

    def __init__(self, message: str = "Connection error.", *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """No answer came within the client's timeout."""

    def __init__(self, message: str = "Request timed out.", *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class APIStatusError(UsagePortalError):
    """The portal answered with an error status.

    ``status_code`` and ``response`` are the HTTP answer; ``body`` its JSON (a dict; the text when
    it is not JSON). From a JSON body: ``detail`` (the portal's message), ``error_id`` (of a 500,
    to quote to support), ``errors`` (offending parameter → messages) and ``param`` (the first
    offending parameter, or None).
    """

    status_code: int

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        fields = body if isinstance(body, dict) else {}
        self.detail: str | None = _text_or_none(fields.get("detail"))
        self.error_id: str | None = _text_or_none(fields.get("error_id"))
        self.errors: dict[str, list[str]] = _parameter_errors(fields)
        self.param: str | None = next(iter(self.errors), None)


class BadRequestError(APIStatusError):
    """400: a parameter or the body was rejected; ``param`` names the parameter when there is one.

    The portal's body names each offending parameter, e.g.
    ``{"detail": "Invalid query parameter: start_month.", "start_month": ["…"]}``.
    """


class AuthenticationError(APIStatusError):
    """401: the key is missing, malformed, unknown or revoked. Never retried."""


class PermissionDeniedError(APIStatusError):
    """403: the key's organisation is inactive, or the key is of the wrong kind. Never retried."""


class NotFoundError(APIStatusError):
    """404: no such endpoint or object."""


class RequestTooLargeError(APIStatusError):
    """413: too many items or too many bytes in one request."""


class RateLimitError(APIStatusError):
    """429: throttled; ``retry_after`` is the seconds the portal asked to wait (None if unsaid)."""

    def __init__(
        self, message: str, *, response: httpx.Response, body: Any, retry_after: float | None = None
    ) -> None:
        super().__init__(message, response=response, body=body)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """5xx: the portal or something in front of it failed; ``error_id`` identifies a portal 500."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
}


def status_error(response: httpx.Response, *, now: float) -> APIStatusError:
    """The exception for an error ``response`` (read already); ``now`` dates ``Retry-After``."""
    body = _body_of(response)
    status = response.status_code
    message = _message(status, response.reason_phrase, body)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return RateLimitError(message, response=response, body=body, retry_after=retry_after)
    error_class = InternalServerError if status >= 500 else _BY_STATUS.get(status, APIStatusError)
    return error_class(message, response=response, body=body)


def _body_of(response: httpx.Response) -> Any:
    try:
        return _json.loads(response.content)
    except ValueError:
        return response.text


def _message(status: int, reason: str, body: Any) -> str:
    head = f"{status} {reason}".strip()
    if not isinstance(body, dict):
        text = " ".join(str(body).split())
        return f"{head}: {text[:200]}" if text else head
    parts = [head + (f": {body['detail']}" if isinstance(body.get("detail"), str) else "")]
    for name, messages in _parameter_errors(body).items():
        parts.append(f"{name}: {' '.join(messages)}")
    if isinstance(body.get("error_id"), str):
        parts.append(f"error_id {body['error_id']}")
    return " | ".join(parts)


def _parameter_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    """``{name: [messages]}`` for each key of a DRF-style error body other than detail/error_id."""
    errors: dict[str, list[str]] = {}
    for name, value in body.items():
        if name in _RESERVED_KEYS:
            continue
        if isinstance(value, list):
            errors[name] = [str(item) for item in value]
        elif isinstance(value, str):
            errors[name] = [value]
    return errors


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
