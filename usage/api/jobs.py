"""``GET /api/v1/jobs``: the jobs of one month behind a cost, page by page, with exact money."""

import datetime as dt

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from portal.api.schema import ERROR_RESPONSES, RESPONSE_HEADERS
from usage.job_query import MAX_LIMIT, STATUSES, JobQuery, JobQueryError, job_cursor_encode, job_query_parse
from usage.job_selectors import JobPage, PricedJob, job_page
from usage.months import month_of
from usage.pricing import ZERO

from .schema import JOBS_DESCRIPTION, JOBS_EXAMPLE, MONTH_PARAMETER
from .views import CountedApiKeyView


def iso_utc(moment: dt.datetime) -> str:
    """``2025-03-01T09:30:00Z``: an aware moment in UTC, ISO 8601 with ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _exact(amount):
    """The exact amount; a zero as plain ``0`` rather than ``0E-8``."""
    return amount if amount else ZERO


def job_data(job: PricedJob) -> dict:
    """One JOB of the body; money as exact ``Decimal`` (rendered as exact JSON numbers)."""
    return {
        "external_id": job.external_id,
        "created_at": iso_utc(job.created_at),
        "api_key": job.api_key,
        "language": job.language,
        "audio_duration_seconds": job.audio_duration_seconds,
        "status": job.status,
        "has_transcript": job.has_transcript,
        "has_lrc": job.has_lrc,
        "transcription_tokens": job.transcription_tokens,
        "note_tokens": job.note_tokens,
        "tier": job.tier,
        "is_free": job.is_free,
        "base_cost": _exact(job.base_cost),
        "final_cost": _exact(job.final_cost),
        "savings": _exact(job.savings),
    }


def job_list_data(page: JobPage, *, query: JobQuery) -> dict:
    """``{"data": [JOB, ...], "next_cursor": str | None}``."""
    next_cursor = job_cursor_encode(query, page.next_after) if page.next_after else None
    return {"data": [job_data(job) for job in page.jobs], "next_cursor": next_cursor}


_EXACT = "Exact (unrounded): the jobs of a month add up exactly to the month's figures."


class JobSerializer(serializers.Serializer):
    external_id = serializers.CharField(help_text="The job platform's id of the job.")
    created_at = serializers.DateTimeField(help_text="When the job was created (UTC, ISO 8601 with Z).")
    api_key = serializers.CharField(allow_null=True, help_text="Name of the key it was sent with; null: web.")
    language = serializers.CharField()
    audio_duration_seconds = serializers.IntegerField(min_value=0)
    status = serializers.ChoiceField(choices=list(STATUSES))
    has_transcript = serializers.BooleanField()
    has_lrc = serializers.BooleanField()
    transcription_tokens = serializers.IntegerField(min_value=0)
    note_tokens = serializers.IntegerField(min_value=0)
    tier = serializers.CharField(help_text="Name of the plan tier holding the job's rank in its month.")
    is_free = serializers.BooleanField(help_text="Among the organisation's free jobs (final cost 0).")
    base_cost = serializers.FloatField(min_value=0, help_text=f"Cost before discounts. {_EXACT}")
    final_cost = serializers.FloatField(min_value=0, help_text=f"Cost charged. {_EXACT}")
    savings = serializers.FloatField(min_value=0, help_text=f"base_cost - final_cost. {_EXACT}")


class JobListSerializer(serializers.Serializer):
    data = serializers.ListField(child=JobSerializer(), help_text="Jobs in rank order.")
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null on the last page."
    )


class JobParameterErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    month = serializers.ListField(child=serializers.CharField(), required=False)
    status = serializers.ListField(child=serializers.CharField(), required=False)
    limit = serializers.ListField(child=serializers.CharField(), required=False)
    cursor = serializers.ListField(child=serializers.CharField(), required=False)


def _text(name: str, description: str, example: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        required=False,
        description=description,
        examples=[OpenApiExample(example or "empty", value=example)],
    )


class JobListView(CountedApiKeyView):
    """``GET /api/v1/jobs``: one page of the key's organisation's jobs of a month."""

    @extend_schema(
        operation_id="jobs_list",
        summary="Jobs of a month, with their costs",
        description=JOBS_DESCRIPTION,
        tags=["jobs"],
        parameters=[
            OpenApiParameter(
                "month",
                description="The month, YYYY-MM (UTC). Default: the current month.",
                examples=[OpenApiExample("January 2025", value="2025-01")],
                **MONTH_PARAMETER,
            ),
            _text(
                "api_key",
                "Only the jobs sent with the key of this name; empty: only web jobs.",
                "some api key",
            ),
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=False,
                enum=list(STATUSES),
                description="Only the jobs with this status.",
            ),
            _text("language", "Only the jobs in this language.", "Hindi"),
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                required=False,
                description=f"Jobs per page, 1 to {MAX_LIMIT:,}. Default: 100.",
            ),
            _text("cursor", "`next_cursor` of the previous page, unchanged.", ""),
            *RESPONSE_HEADERS,
        ],
        responses={
            200: OpenApiResponse(
                JobListSerializer,
                description="One page of jobs.",
                examples=[OpenApiExample("A page of two jobs", value=JOBS_EXAMPLE, status_codes=["200"])],
            ),
            400: OpenApiResponse(
                JobParameterErrorSerializer,
                description="A bad parameter; the body names it.",
                examples=[
                    OpenApiExample(
                        "Bad limit",
                        value={
                            "detail": "Invalid query parameter: limit.",
                            "limit": ["'0' is not a whole number from 1 to 1000."],
                        },
                        status_codes=["400"],
                    )
                ],
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        organisation = request.auth.organisation
        try:
            asked = job_query_parse(
                request.query_params, organisation_id=organisation.pk, current_month=month_of(self.now)
            )
        except JobQueryError as error:
            names = ", ".join(error.errors)
            raise exceptions.ValidationError(
                {"detail": f"Invalid query parameter: {names}.", **error.errors}
            ) from None
        page = job_page(organisation=organisation, query=asked.query, after=asked.after, limit=asked.limit)
        return Response(job_list_data(page, query=asked.query))
