"""The JSON bodies of the ingestion endpoints.

The ``*_data`` functions build the response bodies from ``usage.ingesting``'s results; the
serializer classes only describe the bodies in the OpenAPI schema (an item is judged by
``usage.validation.validate_job``, never by a serializer).
"""

import datetime as dt

from rest_framework import serializers

from usage.ingesting import REJECTED, IngestedJob, IngestReport
from usage.models import Job
from usage.months import format_month

STATUSES = ("created", "updated", "unchanged", "rejected")
JOB_STATUSES = tuple(Job.Status.values)


def _iso_z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def ingest_report_data(report: IngestReport) -> dict:
    """The ``POST /api/v1/ingest/jobs`` body: the counts, then one result per item in order."""
    results = []
    for result in report.results:
        data = {"index": result.index, "external_id": result.external_id, "status": result.status}
        if result.status == REJECTED:
            data["errors"] = [{"field": error.field, "message": error.message} for error in result.errors]
        results.append(data)
    return {**{status: report.count(status) for status in STATUSES}, "results": results}


def ingested_job_data(ingested: IngestedJob) -> dict:
    """The ``GET /api/v1/ingest/jobs/<org_id>/<external_id>`` body: the job as an ITEM (the fields
    of an ``import_jobs`` line) plus its month, tier name and free flag."""
    job = ingested.job
    return {
        "org_id": ingested.org_id,
        "external_id": job.external_id,
        "api_key": ingested.api_key_name,
        "created_at": _iso_z(job.created_at),
        "language": job.language,
        "audio_duration_seconds": job.audio_duration_seconds,
        "status": job.status,
        "has_transcript": job.has_transcript,
        "has_lrc": job.has_lrc,
        "transcription_tokens": job.transcription_tokens,
        "note_tokens": job.note_tokens,
        "month": format_month(job.month),
        "tier": ingested.tier_name,
        "is_free": job.is_free,
    }


class JobItemSerializer(serializers.Serializer):
    org_id = serializers.CharField(help_text="The organisation's public id, e.g. `org_abc123`.")
    external_id = serializers.CharField(
        max_length=200, help_text="The platform's job id; unique within the organisation."
    )
    api_key = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="Name of the organisation's API key the job was submitted with; null or absent: a web job.",
    )
    created_at = serializers.DateTimeField(
        help_text="ISO 8601; UTC when no zone is given; at most 5 minutes in the future."
    )
    language = serializers.CharField(max_length=64, help_text="A language name such as `Hindi`.")
    audio_duration_seconds = serializers.IntegerField(min_value=0, max_value=2_678_400)
    status = serializers.ChoiceField(choices=JOB_STATUSES)
    has_transcript = serializers.BooleanField(required=False, default=False)
    has_lrc = serializers.BooleanField(required=False, default=False)
    transcription_tokens = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=1_000_000_000
    )
    note_tokens = serializers.IntegerField(required=False, default=0, min_value=0, max_value=1_000_000_000)


class IngestRequestSerializer(serializers.Serializer):
    jobs = JobItemSerializer(many=True, help_text="1 to 1,000 items; the whole body at most 1 MiB.")


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The item's field at fault; null: the item.")
    message = serializers.CharField(help_text="One line, naming the field.")


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in `jobs`, from 0.")
    external_id = serializers.CharField(
        allow_null=True, help_text="The item's `external_id` as given; null when it is not a string."
    )
    status = serializers.ChoiceField(choices=STATUSES)
    errors = FieldErrorSerializer(many=True, required=False, help_text="Only for `rejected`: every problem.")


class IngestResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = ItemResultSerializer(many=True, help_text="One per item, in request order.")


class IngestedJobSerializer(JobItemSerializer):
    month = serializers.CharField(help_text="The job's UTC month, YYYY-MM.")
    tier = serializers.CharField(help_text="The name of the plan tier the job's rank falls in.")
    is_free = serializers.BooleanField(help_text="Whether the job is one of the organisation's free jobs.")
