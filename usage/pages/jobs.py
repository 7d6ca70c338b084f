"""Customer jobs page and its CSV: the jobs of a month behind a cost, from ``usage.job_selectors``.

Both read the same parameters as ``GET /api/v1/jobs`` (``usage.job_query``). The page's key
picker sends ``api_key=*`` for "all keys" and ``status=`` for any status (a plain form cannot
leave a chosen field out), both read as no filter; ``api_key=`` (empty) means the web jobs, as in the API.
"""

import csv
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.selectors import OrganisationAccess
from accounts.views import organisation_page
from usage.job_query import (
    STATUSES,
    JobListRequest,
    JobQuery,
    JobQueryError,
    job_cursor_encode,
    job_query_parse,
)
from usage.job_selectors import PricedJob, job_key_names, job_page, job_stream
from usage.months import current_month, format_month

ALL_KEYS = "*"
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = [
    "external_id",
    "created_at",
    "api_key",
    "language",
    "audio_duration_seconds",
    "status",
    "has_transcript",
    "has_lrc",
    "transcription_tokens",
    "note_tokens",
    "tier",
    "is_free",
    "base_cost",
    "final_cost",
    "savings",
]


def _params(query: QueryDict) -> QueryDict:
    """The form's "any" choices (``api_key=*``, an empty status) as parameters not given."""
    params = query.copy()
    if params.get("api_key") == ALL_KEYS:
        del params["api_key"]
    if params.get("status") == "":
        del params["status"]
    return params


def _parse(request: HttpRequest, access: OrganisationAccess) -> JobListRequest:
    return job_query_parse(
        _params(request.GET), organisation_id=access.organisation.pk, current_month=current_month()
    )


def _query_string(query: JobQuery, *, limit: int | None = None, cursor: str | None = None) -> str:
    """The page's parameters for ``query`` (and a cursor), as a URL query string."""
    filters = query.filters
    params = {"month": format_month(query.month)}
    if filters.api_key is not None:
        params["api_key"] = filters.api_key
    if filters.status is not None:
        params["status"] = filters.status
    if filters.language is not None:
        params["language"] = filters.language
    if limit is not None:
        params["limit"] = str(limit)
    if cursor is not None:
        params["cursor"] = cursor
    return urlencode(params)


@require_GET
@organisation_page
def jobs_page(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    """One page of the month's jobs with the filters; bad parameters re-show the form (400)."""
    organisation = access.organisation
    context = {
        "access": access,
        "organisation": organisation,
        "statuses": STATUSES,
        "key_names": job_key_names(organisation=organisation),
        "all_keys": ALL_KEYS,
        "max_month": format_month(current_month()),
        "asked": request.GET,
        "errors": None,
    }
    try:
        asked = _parse(request, access)
    except JobQueryError as error:
        context["errors"] = error.errors
        return render(request, "usage/jobs_page.html", context, status=400)
    page = job_page(organisation=organisation, query=asked.query, after=asked.after, limit=asked.limit)
    limit = int(request.GET["limit"]) if "limit" in request.GET else None
    context.update(
        query=asked.query,
        month=format_month(asked.query.month),
        jobs=page.jobs,
        is_first_page=asked.after is None,
        first_url="?" + _query_string(asked.query, limit=limit),
        next_url=(
            "?"
            + _query_string(asked.query, limit=limit, cursor=job_cursor_encode(asked.query, page.next_after))
            if page.next_after
            else None
        ),
        csv_url="?" + _query_string(asked.query),
    )
    return render(request, "usage/jobs_page.html", context)


def _safe_text(value: str | None) -> str:
    value = value or ""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def _exact(amount: Decimal) -> str:
    return f"{amount:f}"


def job_csv_row(job: PricedJob) -> list[str]:
    """One job as CSV cells: exact money, text cells a spreadsheet cannot run as formulas."""
    return [
        _safe_text(job.external_id),
        job.created_at.isoformat().replace("+00:00", "Z"),
        _safe_text(job.api_key),
        _safe_text(job.language),
        str(job.audio_duration_seconds),
        job.status,
        "true" if job.has_transcript else "false",
        "true" if job.has_lrc else "false",
        str(job.transcription_tokens),
        str(job.note_tokens),
        _safe_text(job.tier),
        "true" if job.is_free else "false",
        _exact(job.base_cost),
        _exact(job.final_cost),
        _exact(job.savings),
    ]


class _Line:
    """A file-like object whose ``write`` hands back the line the csv writer wrote."""

    def write(self, value: str) -> str:
        return value


def job_csv_lines(jobs: Iterator[PricedJob]) -> Iterator[str]:
    """The header, then one CRLF-terminated line per job, produced as ``jobs`` is consumed."""
    writer = csv.writer(_Line(), lineterminator="\r\n")
    yield writer.writerow(CSV_HEADER)
    for job in jobs:
        yield writer.writerow(job_csv_row(job))


@require_GET
@organisation_page
def jobs_csv_download(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    """Every job of the month and filters as a streamed CSV (any size, bounded memory)."""
    try:
        asked = _parse(request, access)
    except JobQueryError as error:
        problems = [f"{name}: {' '.join(messages)}" for name, messages in error.errors.items()]
        return HttpResponse(
            "Cannot export these jobs: " + " ".join(problems) + "\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    jobs = job_stream(organisation=access.organisation, query=asked.query)
    response = StreamingHttpResponse(job_csv_lines(jobs), content_type="text/csv; charset=utf-8")
    filename = f"{access.organisation.org_id}-jobs-{format_month(asked.query.month)}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
