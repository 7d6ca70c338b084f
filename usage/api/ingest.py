"""The job platform's endpoints, answered with a service key: ``POST /api/v1/ingest/jobs`` and
``GET``/``DELETE /api/v1/ingest/jobs/<org_id>/<external_id>``.

The views translate HTTP (the envelope's size, type and shape) and call ``usage.ingesting``;
items are judged there by ``usage.validation``, the one validator of jobs. No request here is an
API call of any organisation.
"""

import io

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from portal.api.schema import RESPONSE_HEADERS, ErrorSerializer
from portal.api.views import ServiceKeyView
from usage.ingesting import (
    MAX_ITEMS,
    ingested_job_delete,
    ingested_job_get,
    ingested_usage_refresh,
    jobs_ingest,
)
from usage.validation import DuplicateFields, InvalidJSON, json_loads

from .ingest_serializers import (
    IngestedJobSerializer,
    IngestRequestSerializer,
    IngestResponseSerializer,
    ingest_report_data,
    ingested_job_data,
)
from .schema import (
    INGEST_DESCRIPTION,
    INGEST_ERROR_RESPONSES,
    INGEST_EXAMPLE,
    INGEST_REQUEST_EXAMPLE,
    INGESTED_JOB_EXAMPLE,
)

MAX_BODY_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = (
        "Send the body with a Content-Length header: a chunked (or unsized) body is not accepted."
    )
    default_code = "length_required"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "request_too_large"


def body_read(stream, *, content_length: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, at most ``limit`` bytes; ``RequestTooLarge`` when ``Content-Length`` says
    more, or when the stream holds more whatever the header said. Never reads past ``limit + 1``."""
    too_large = RequestTooLarge(f"The body must be at most {limit:,} bytes (1 MiB).")
    try:
        declared = int(content_length) if content_length else None
    except ValueError:
        declared = None
    if declared is not None and declared > limit:
        raise too_large
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large
    return b"".join(chunks)


def envelope_records(body: bytes) -> list:
    """The items of a ``{"jobs": [...]}`` body; ``ParseError`` (400) or ``RequestTooLarge`` (413)
    naming what is wrong with the envelope. Items are only checked to be objects here."""
    try:
        envelope = json_loads(body.decode())
    except UnicodeDecodeError:
        raise exceptions.ParseError("The body is not UTF-8 text.") from None
    except InvalidJSON as error:
        raise exceptions.ParseError(f"The body is {error}.") from None
    if not isinstance(envelope, dict):
        raise exceptions.ParseError('The body must be a JSON object: {"jobs": [...]}.')
    if type(envelope) is DuplicateFields:
        raise exceptions.ParseError(f"The body names {', '.join(envelope.duplicates)} more than once.")
    records = envelope.get("jobs")
    if not isinstance(records, list):
        raise exceptions.ParseError('The body must have a "jobs" list: {"jobs": [...]}.')
    if not records:
        raise exceptions.ParseError('"jobs" is empty: send 1 to 1,000 jobs.')
    if len(records) > MAX_ITEMS:
        raise RequestTooLarge(f'"jobs" has {len(records):,} items: send at most {MAX_ITEMS:,} per request.')
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise exceptions.ParseError(f'"jobs"[{index}] is not a JSON object.')
    return records


class IngestJobsView(ServiceKeyView):
    """``POST /api/v1/ingest/jobs``: write a batch of jobs of the key's organisations."""

    @extend_schema(
        operation_id="ingest_jobs",
        summary="Push jobs (job platform)",
        description=INGEST_DESCRIPTION,
        tags=["ingestion"],
        request=IngestRequestSerializer,
        parameters=RESPONSE_HEADERS,
        examples=[OpenApiExample("Two jobs", value=INGEST_REQUEST_EXAMPLE, request_only=True)],
        responses={
            200: OpenApiResponse(
                IngestResponseSerializer,
                description="Every item judged; the valid ones written. One result per item, in order.",
                examples=[
                    OpenApiExample(
                        "Mixed batch", value=INGEST_EXAMPLE, response_only=True, status_codes=["200"]
                    )
                ],
            ),
            400: OpenApiResponse(
                ErrorSerializer,
                description=(
                    'Not JSON, not an object, no "jobs" list, an empty list, or an item that is not '
                    "an object; nothing is written."
                ),
                examples=[
                    OpenApiExample(
                        "Empty list",
                        value={"detail": '"jobs" is empty: send 1 to 1,000 jobs.'},
                        response_only=True,
                        status_codes=["400"],
                    )
                ],
            ),
            413: OpenApiResponse(
                ErrorSerializer,
                description="More than 1,000 items or a body of more than 1 MiB; nothing is written.",
                examples=[
                    OpenApiExample(
                        "Too many items",
                        value={"detail": '"jobs" has 1,001 items: send at most 1,000 per request.'},
                        response_only=True,
                        status_codes=["413"],
                    )
                ],
            ),
            411: OpenApiResponse(
                ErrorSerializer, description="The body is sent chunked, or without a `Content-Length` header."
            ),
            415: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "The body is not sent as `application/json`, or is sent compressed (`Content-Encoding`)."
                ),
            ),
            **INGEST_ERROR_RESPONSES,
        },
    )
    def post(self, request):
        if request.content_type.split(";")[0].strip().lower() != "application/json":
            raise exceptions.UnsupportedMediaType(request.content_type or "(none)")
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            # A compressed body would only fail as "not JSON"; name the real problem instead.
            raise exceptions.UnsupportedMediaType(
                request.content_type,
                detail=f"Content-Encoding {encoding[:40]!r} is not accepted: send the JSON uncompressed.",
            )
        # WSGI hands Django no body without a length: a chunked body would read as empty.
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if chunked or not request.META.get("CONTENT_LENGTH"):
            raise LengthRequired()
        stream = request.stream or io.BytesIO()  # DRF gives None for an empty body
        body = body_read(stream, content_length=request.META.get("CONTENT_LENGTH"))
        records = envelope_records(body)
        report = jobs_ingest(records=records, scope=request.user.scope, now=self.now, refresh=False)
        if not report.written:
            return Response(ingest_report_data(report))
        # Once the answer is sent (the server closes the response after writing it), not before:
        # the platform does not wait for the usage refresh, and no reader misses it, since every
        # read first resolves the marks the write left.
        return RefreshWhenClosed(ingest_report_data(report), organisation_ids=report.written)


class RefreshWhenClosed(Response):
    """An ingestion's answer that refreshes the written organisations' usage when the server
    closes it, that is once the body has been sent (``HttpResponse.close``)."""

    def __init__(self, data, *, organisation_ids) -> None:
        super().__init__(data)
        self.organisation_ids = organisation_ids

    def close(self) -> None:
        try:
            super().close()
        finally:
            ingested_usage_refresh(organisation_ids=self.organisation_ids)


_JOB_PATH_PARAMETERS = [
    OpenApiParameter("org_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="e.g. `org_abc123`."),
    OpenApiParameter(
        "external_id",
        OpenApiTypes.STR,
        OpenApiParameter.PATH,
        description="The job's external id, percent-encoded; it may contain `/`.",
    ),
]
_NOT_FOUND = OpenApiResponse(
    ErrorSerializer,
    description="No such job, or its organisation is outside the key's scope.",
    examples=[OpenApiExample("Absent", value={"detail": "No such job."}, status_codes=["404"])],
)


class IngestedJobView(ServiceKeyView):
    """``GET``/``DELETE /api/v1/ingest/jobs/<org_id>/<external_id>``: read or remove one job."""

    @extend_schema(
        operation_id="ingest_job_get",
        summary="Read a stored job (job platform)",
        description=(
            "The stored job as an ingestion item (the fields of an `import_jobs` line; `api_key` is "
            "the key's name or null, `created_at` in UTC with `Z`), plus its `month`, the name of "
            "its `tier` and `is_free`, as of this request."
        ),
        tags=["ingestion"],
        parameters=[*_JOB_PATH_PARAMETERS, *RESPONSE_HEADERS],
        responses={
            200: OpenApiResponse(
                IngestedJobSerializer,
                description="The job.",
                examples=[OpenApiExample("A job", value=INGESTED_JOB_EXAMPLE, status_codes=["200"])],
            ),
            404: _NOT_FOUND,
            **INGEST_ERROR_RESPONSES,
        },
    )
    def get(self, request, org_id: str, external_id: str):
        ingested = ingested_job_get(org_id=org_id, external_id=external_id, scope=request.user.scope)
        if ingested is None:
            raise exceptions.NotFound("No such job.")
        return Response(ingested_job_data(ingested))

    @extend_schema(
        operation_id="ingest_job_delete",
        summary="Delete a job recorded by mistake (job platform)",
        description="Removes the job; usage reflects it at the next request.",
        tags=["ingestion"],
        parameters=[*_JOB_PATH_PARAMETERS, *RESPONSE_HEADERS],
        responses={204: OpenApiResponse(description="Deleted."), 404: _NOT_FOUND, **INGEST_ERROR_RESPONSES},
    )
    def delete(self, request, org_id: str, external_id: str):
        if not ingested_job_delete(org_id=org_id, external_id=external_id, scope=request.user.scope):
            raise exceptions.NotFound("No such job.")
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(exclude=True)
class IngestNotFoundView(ServiceKeyView):
    """Any other path under ``api/v1/ingest/``: a JSON 404 for a service key."""

    def get(self, request, *args, **kwargs):
        raise exceptions.NotFound("No such API endpoint.")

    post = put = patch = delete = options = get
