"""``Client`` and ``AsyncClient``: configuration, one request with its retries, the resources.

Both clients share everything but the waiting: ``_BaseClient`` builds each request, reads each
answer and decides about retries; the two subclasses only send and sleep, one blocking and one
with ``await``.
"""

from __future__ import annotations

import logging
import os
import platform
from types import TracebackType
from typing import Any

import httpx

from . import _json
from ._errors import APIConnectionError, APIStatusError, APITimeoutError, UsagePortalError, status_error
from ._resources import AsyncIngest, AsyncJobs, AsyncUsage, Ingest, Jobs, Usage
from ._retry import Clock, is_retryable_status, parse_retry_after, retry_delay
from ._version import __version__

logger = logging.getLogger("usage_portal_client")

ENV_API_KEY = "USAGE_PORTAL_API_KEY"
ENV_BASE_URL = "USAGE_PORTAL_BASE_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2

USER_AGENT = f"usage-portal-client/{__version__} python/{platform.python_version()} httpx/{httpx.__version__}"

# Failures without an answer that another attempt may cure; a malformed URL or an unsupported
# scheme (the other ``httpx.TransportError``s) fail the same way every time.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _BaseClient:
    """Settings and the parts of a request that do not depend on sync or async."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        *,
        timeout: float | httpx.Timeout,
        max_retries: int,
        clock: Clock | None,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        if not api_key:
            raise UsagePortalError(
                f"No API key: pass api_key=... or set the {ENV_API_KEY} environment variable."
            )
        base_url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            raise UsagePortalError(f"base_url must start with http:// or https://, not {base_url!r}.")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more.")
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._clock = clock or Clock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _build_request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        params: dict[str, str | None] | None,
        body: Any,
    ) -> httpx.Request:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        content = None
        if body is not None:
            content = _json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        given = {name: value for name, value in (params or {}).items() if value is not None}
        return http.build_request(
            method, self.base_url + path, params=given, content=content, headers=headers, timeout=self.timeout
        )

    def _answer(self, response: httpx.Response) -> Any | UsagePortalError:
        """The JSON of a successful answer, or the error to raise (or retry) for any other."""
        if response.is_success:
            try:
                return _json.loads(response.content)
            except ValueError:
                return UsagePortalError(
                    f"{response.request.method} {response.request.url.path} answered "
                    f"{response.status_code} with a body that is not JSON."
                )
        return status_error(response, now=self._clock.now())

    def _retry_delay(
        self, error: UsagePortalError, retries_done: int, request: httpx.Request
    ) -> float | None:
        """Seconds to wait before trying again after ``error``, or None to raise it now."""
        if retries_done >= self.max_retries:
            return None
        if isinstance(error, APIStatusError):
            if not is_retryable_status(error.status_code):
                return None
            retry_after = parse_retry_after(error.response.headers.get("Retry-After"), now=self._clock.now())
        elif isinstance(error, APIConnectionError) and isinstance(error.__cause__, _TRANSIENT):
            retry_after = None
        else:
            return None
        delay = retry_delay(retries_done=retries_done, retry_after=retry_after, jitter=self._clock.random())
        if delay is not None:
            logger.info(
                "Retrying %s %s in %.2f s (retry %d of %d) after: %s",
                request.method,
                request.url.path,
                delay,
                retries_done + 1,
                self.max_retries,
                error,
            )
        return delay


def _connection_error(error: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    wrapped: APIConnectionError
    if isinstance(error, httpx.TimeoutException):
        wrapped = APITimeoutError(f"Request timed out: {request.method} {request.url}", request=request)
    else:
        wrapped = APIConnectionError(
            f"Connection error: {request.method} {request.url}: {error or type(error).__name__}",
            request=request,
        )
    wrapped.__cause__ = error
    return wrapped


class Client(_BaseClient):
    """A blocking client of the Usage Portal's REST API.

    ``api_key`` defaults to ``$USAGE_PORTAL_API_KEY`` (a customer key for ``usage`` and ``jobs``,
    a service key for ``ingest``); ``base_url`` to ``$USAGE_PORTAL_BASE_URL``, else
    ``http://127.0.0.1:8000``. ``timeout`` (seconds, or an ``httpx.Timeout``) applies to each
    attempt. Connection errors, timeouts, 429 and 5xx are retried up to ``max_retries`` times,
    waiting as ``Retry-After`` asks (up to 60 s) or with exponential backoff and jitter; each
    retry is one more request, and so one more API call of the key. ``http_client`` lets you
    bring your own ``httpx.Client`` (proxies, certificates); it is then yours to close.

    Use it as a context manager, or call ``close()``, to release its connections.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
        _clock: Clock | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout=timeout, max_retries=max_retries, clock=_clock)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self.usage = Usage(self)
        self.jobs = Jobs(self)
        self.ingest = Ingest(self)

    def _request(
        self, method: str, path: str, *, params: dict[str, str | None] | None = None, body: Any = None
    ) -> Any:
        """Send one API request, retrying as the class says; the JSON answer, or raise."""
        request = self._build_request(self._http, method, path, params, body)
        retries_done = 0
        while True:
            try:
                response = self._http.send(request)
            except httpx.TransportError as error:
                outcome: Any = _connection_error(error, request)
            else:
                outcome = self._answer(response)
            if not isinstance(outcome, UsagePortalError):
                return outcome
            delay = self._retry_delay(outcome, retries_done, request)
            if delay is None:
                raise outcome
            self._clock.sleep(delay)
            retries_done += 1

    def close(self) -> None:
        """Close the connections (not those of an ``http_client`` you passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """``Client`` with ``await``: the same arguments, resources, results, errors and retries.

    ``await client.usage.get()``, ``await client.usage.all_time()``,
    ``async for job in client.jobs.list(...)``, ``await client.ingest.jobs(items)``. Use it as an
    async context manager, or ``await client.close()``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
        _clock: Clock | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout=timeout, max_retries=max_retries, clock=_clock)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)
        self.usage = AsyncUsage(self)
        self.jobs = AsyncJobs(self)
        self.ingest = AsyncIngest(self)

    async def _request(
        self, method: str, path: str, *, params: dict[str, str | None] | None = None, body: Any = None
    ) -> Any:
        """Send one API request, retrying as ``Client`` does; the JSON answer, or raise."""
        request = self._build_request(self._http, method, path, params, body)
        retries_done = 0
        while True:
            try:
                response = await self._http.send(request)
            except httpx.TransportError as error:
                outcome: Any = _connection_error(error, request)
            else:
                outcome = self._answer(response)
            if not isinstance(outcome, UsagePortalError):
                return outcome
            delay = self._retry_delay(outcome, retries_done, request)
            if delay is None:
                raise outcome
            await self._clock.async_sleep(delay)
            retries_done += 1

    async def close(self) -> None:
        """Close the connections (not those of an ``http_client`` you passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
