"""What a jobs listing asks for: its query parameters, checked, and its opaque cursor.

Shared by ``GET /api/v1/jobs``, the jobs page and its CSV. A cursor is signed
(``django.core.signing``) and binds the organisation, the month and the filters it was made for,
so it cannot be forged, edited, or replayed against another query or organisation.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from django.core import signing

from .models import Job
from .months import format_month, parse_month

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STATUSES = tuple(Job.Status.values)
_CURSOR_SALT = "usage.jobs.cursor"


class JobQueryError(ValueError):
    """Rejected parameters; ``errors`` maps each offending parameter name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class JobFilters:
    """``api_key``: None for any job, ``""`` for web jobs only, else a key name; None means no filter."""

    api_key: str | None = None
    status: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class JobQuery:
    """Which jobs: those of one organisation and UTC month (first day) that pass ``filters``."""

    organisation_id: int
    month: dt.date
    filters: JobFilters = JobFilters()

    def _binding(self) -> list:
        filters = self.filters
        return [
            self.organisation_id,
            format_month(self.month),
            filters.api_key,
            filters.status,
            filters.language,
        ]


@dataclass(frozen=True)
class JobPosition:
    """The (created_at, id) of the last job shown: the next page starts strictly after it."""

    created_at: dt.datetime
    id: int


@dataclass(frozen=True)
class JobListRequest:
    query: JobQuery
    limit: int
    after: JobPosition | None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 20 else text[:20] + "...")


def job_cursor_encode(query: JobQuery, position: JobPosition) -> str:
    """An opaque, signed cursor: the jobs of ``query`` after ``position``."""
    payload = {"q": query._binding(), "t": position.created_at.isoformat(), "i": position.id}
    return signing.dumps(payload, salt=_CURSOR_SALT, compress=True)


def job_cursor_decode(query: JobQuery, token: str) -> JobPosition:
    """The position a cursor of ``query`` holds; ``JobQueryError`` naming ``cursor`` otherwise."""
    invalid = JobQueryError(
        {"cursor": ["Invalid cursor: use the next_cursor of the previous page unchanged."]}
    )
    try:
        payload = signing.loads(token, salt=_CURSOR_SALT)
    except signing.BadSignature:
        raise invalid from None
    if not isinstance(payload, dict):
        raise invalid
    if payload.get("q") != query._binding():
        raise JobQueryError(
            {"cursor": ["This cursor belongs to another query: keep month and filters as they were."]}
        )
    try:
        created_at = dt.datetime.fromisoformat(payload["t"])
        job_id = payload["i"]
    except (KeyError, TypeError, ValueError):
        raise invalid from None
    if created_at.tzinfo is None or not isinstance(job_id, int) or isinstance(job_id, bool):
        raise invalid
    return JobPosition(created_at=created_at, id=job_id)


def _month(text: str | None, current_month: dt.date, errors: dict) -> dt.date:
    if text is None:
        return current_month
    try:
        month = parse_month(text)
    except ValueError:
        errors["month"] = [
            f"{_shown(text)} is not a month: expected YYYY-MM, e.g. {format_month(current_month)}."
        ]
        return current_month
    if month > current_month:
        errors["month"] = [
            f"{format_month(month)} is after the current month ({format_month(current_month)})."
        ]
    return month


def _limit(text: str | None, errors: dict) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not (1 <= int(text) <= MAX_LIMIT):
        errors["limit"] = [f"{_shown(text)} is not a whole number from 1 to {MAX_LIMIT}."]
        return DEFAULT_LIMIT
    return int(text)


def job_query_parse(
    params: Mapping[str, str], *, organisation_id: int, current_month: dt.date
) -> JobListRequest:
    """The listing ``params`` ask for; raises ``JobQueryError`` naming every bad parameter.

    ``month`` (YYYY-MM, default ``current_month``; malformed, empty or future is rejected),
    ``api_key`` (a key name; given empty: web jobs only), ``status`` (one of ``STATUSES``),
    ``language``, ``limit`` (1 to ``MAX_LIMIT``, default ``DEFAULT_LIMIT``) and ``cursor``
    (from the previous page of the same query). Other parameters are ignored; an empty
    ``language`` or ``cursor`` counts as not given (an empty ``status`` is not a status).
    """
    errors: dict[str, list[str]] = {}
    month = _month(params.get("month"), current_month, errors)
    status = params.get("status")
    if status is not None and status not in STATUSES:
        errors["status"] = [f"{_shown(status)} is not a status: expected one of {', '.join(STATUSES)}."]
    limit = _limit(params.get("limit"), errors)
    for name in ("api_key", "language"):
        if "\x00" in params.get(name, ""):  # no stored name holds one; PostgreSQL refuses it in SQL
            errors[name] = ["A NUL character cannot be part of a name."]
    if errors:
        raise JobQueryError(errors)
    filters = JobFilters(
        api_key=params.get("api_key"), status=status, language=params.get("language") or None
    )
    query = JobQuery(organisation_id=organisation_id, month=month, filters=filters)
    cursor = params.get("cursor") or None
    after = job_cursor_decode(query, cursor) if cursor is not None else None
    return JobListRequest(query=query, limit=limit, after=after)
