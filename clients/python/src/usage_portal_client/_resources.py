"""The API's resources as client attributes: ``usage``, ``jobs`` and ``ingest``, sync and async.

Each method turns its arguments into one request (``jobs.list`` into one per page), and the JSON
answer into a typed result. Months are ``YYYY-MM`` strings (a ``datetime.date`` is accepted and
means its month); the portal, not the client, judges them, so a bad month raises
``BadRequestError`` naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import UsagePortalError
from ._models import AllTimeUsage, IngestResult, Job, JobPage, Model, MonthlyUsage

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

M = TypeVar("M", bound=Model)

Month = str | dt.date

USAGE_PATH = "/usage"
ALL_TIME_PATH = "/api/v1/usage"
JOBS_PATH = "/api/v1/jobs"
INGEST_PATH = "/api/v1/ingest/jobs"


def _month(value: Month | None) -> str | None:
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    return value


def _read(model: type[M], body: Any, path: str) -> M:
    """``body`` as a ``model``, or a ``UsagePortalError`` saying the answer was not as documented."""
    try:
        return model.from_dict(body)
    except ValueError as error:
        raise UsagePortalError(f"Unexpected answer from {path}: {error}") from error


def _usage_params(start_month: Month | None, end_month: Month | None) -> dict[str, str | None]:
    return {"start_month": _month(start_month), "end_month": _month(end_month)}


def _jobs_params(
    *,
    month: Month | None,
    api_key: str | None,
    status: str | None,
    language: str | None,
    limit: int | None,
) -> dict[str, str | None]:
    return {
        "month": _month(month),
        "api_key": api_key,
        "status": status,
        "language": language,
        "limit": None if limit is None else str(limit),
    }


def _ingest_body(items: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    if isinstance(items, Mapping):
        raise TypeError("items must be a list of job objects, not one job object.")
    return {"jobs": [dict(item) for item in items]}


def _next_cursor(page: JobPage, cursor: str | None) -> str | None:
    """The cursor to ask for next, or None after the last page; refuses a page pointing to itself."""
    if page.next_cursor is not None and page.next_cursor == cursor:
        raise UsagePortalError(f"{JOBS_PATH} answered the same cursor again; stopping to avoid a loop.")
    return page.next_cursor


# Blocking ------------------------------------------------------------------------------------


class Usage:
    """``client.usage``: the organisation's usage, by month with costs, or all time."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, start_month: Month | None = None, end_month: Month | None = None) -> MonthlyUsage:
        """``GET /usage``: jobs, tokens and costs of whole UTC months, in total, by month and by key.

        Neither month: the current month. Only ``start_month``: through the current month. Only
        ``end_month``: that month alone.
        """
        body = self._client._request("GET", USAGE_PATH, params=_usage_params(start_month, end_month))
        return _read(MonthlyUsage, body, USAGE_PATH)

    def all_time(self) -> AllTimeUsage:
        """``GET /api/v1/usage``: all-time jobs submitted with a key, and all API calls."""
        return _read(AllTimeUsage, self._client._request("GET", ALL_TIME_PATH), ALL_TIME_PATH)


class JobList(Iterable[Job]):
    """The jobs of one query, fetched a page at a time as you iterate (one request per page).

    Nothing is requested until you iterate; each new iteration starts again from the first page.
    """

    def __init__(self, client: Client, params: dict[str, str | None], cursor: str | None) -> None:
        self._client = client
        self._params = params
        self._cursor = cursor

    def pages(self) -> Iterator[JobPage]:
        """Every page in turn, up to the one whose ``next_cursor`` is None."""
        cursor = self._cursor
        while True:
            body = self._client._request("GET", JOBS_PATH, params={**self._params, "cursor": cursor})
            page = _read(JobPage, body, JOBS_PATH)
            yield page
            cursor = _next_cursor(page, cursor)
            if cursor is None:
                return

    def __iter__(self) -> Iterator[Job]:
        for page in self.pages():
            yield from page.data


class Jobs:
    """``client.jobs``: the jobs behind the costs (customer key)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        month: Month | None = None,
        *,
        api_key: str | None = None,
        status: str | None = None,
        language: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobList:
        """``GET /api/v1/jobs``: every job of ``month`` (default: the current month) in rank order.

        Filters: ``api_key`` (a key name; ``""`` selects the jobs sent without a key), ``status``,
        ``language``. ``limit`` is the page size (1-1,000; the portal's default is 100);
        ``cursor`` resumes from a page's ``next_cursor``. Iterate the result for the jobs, or its
        ``pages()`` for the pages.
        """
        params = _jobs_params(month=month, api_key=api_key, status=status, language=language, limit=limit)
        return JobList(self._client, params, cursor)


class Ingest:
    """``client.ingest``: the job platform's writes (service key)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def jobs(self, items: Iterable[Mapping[str, Any]]) -> IngestResult:
        """``POST /api/v1/ingest/jobs`` with ``{"jobs": items}``: create or update jobs by external id.

        Each item is an ``import_jobs`` line object (a ``datetime`` is accepted for
        ``created_at``). 1 to 1,000 items and at most 1 MiB, else ``RequestTooLargeError``.
        Items the portal rejects are reported in the result, not raised. Sending the same items
        again is safe, which is why this request is retried like the others.
        """
        body = self._client._request("POST", INGEST_PATH, body=_ingest_body(items))
        return _read(IngestResult, body, INGEST_PATH)


# Async ---------------------------------------------------------------------------------------


class AsyncUsage:
    """``client.usage`` of an ``AsyncClient``; see ``Usage``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, start_month: Month | None = None, end_month: Month | None = None) -> MonthlyUsage:
        """``GET /usage``; see ``Usage.get``."""
        body = await self._client._request("GET", USAGE_PATH, params=_usage_params(start_month, end_month))
        return _read(MonthlyUsage, body, USAGE_PATH)

    async def all_time(self) -> AllTimeUsage:
        """``GET /api/v1/usage``; see ``Usage.all_time``."""
        return _read(AllTimeUsage, await self._client._request("GET", ALL_TIME_PATH), ALL_TIME_PATH)


class AsyncJobList:
    """``JobList`` for ``async for``: pages are fetched as you iterate."""

    def __init__(self, client: AsyncClient, params: dict[str, str | None], cursor: str | None) -> None:
        self._client = client
        self._params = params
        self._cursor = cursor

    async def pages(self) -> AsyncIterator[JobPage]:
        """Every page in turn, up to the one whose ``next_cursor`` is None."""
        cursor = self._cursor
        while True:
            body = await self._client._request("GET", JOBS_PATH, params={**self._params, "cursor": cursor})
            page = _read(JobPage, body, JOBS_PATH)
            yield page
            cursor = _next_cursor(page, cursor)
            if cursor is None:
                return

    async def __aiter__(self) -> AsyncIterator[Job]:
        async for page in self.pages():
            for job in page.data:
                yield job


class AsyncJobs:
    """``client.jobs`` of an ``AsyncClient``; see ``Jobs``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def list(
        self,
        month: Month | None = None,
        *,
        api_key: str | None = None,
        status: str | None = None,
        language: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AsyncJobList:
        """``GET /api/v1/jobs``; see ``Jobs.list``. Use ``async for`` on the result."""
        params = _jobs_params(month=month, api_key=api_key, status=status, language=language, limit=limit)
        return AsyncJobList(self._client, params, cursor)


class AsyncIngest:
    """``client.ingest`` of an ``AsyncClient``; see ``Ingest``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def jobs(self, items: Iterable[Mapping[str, Any]]) -> IngestResult:
        """``POST /api/v1/ingest/jobs``; see ``Ingest.jobs``."""
        body = await self._client._request("POST", INGEST_PATH, body=_ingest_body(items))
        return _read(IngestResult, body, INGEST_PATH)
