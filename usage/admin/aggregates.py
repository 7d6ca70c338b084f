"""Staff admin of what the usage engine stores: the aggregates, API call counts, stale marks and
task leases. All read-only: only the engine writes them; staff compare them with the jobs."""

from django.contrib import admin
from django.utils.html import format_html

from portal.admin_base import PortalModelAdmin, ReadOnlyAdminMixin, job_list_url
from usage.models import ApiCallCount, Job, LanguageUsage, MonthlyUsage, StaleMonth, TaskLock
from usage.months import format_month

from .base import (
    EstimatedCountMixin,
    LanguageFilter,
    MonthFilter,
    OrganisationFilter,
    OrganisationIdSearchMixin,
)


class ReadOnlyAggregateAdmin(
    ReadOnlyAdminMixin, EstimatedCountMixin, OrganisationIdSearchMixin, PortalModelAdmin
):
    """Stored aggregates are written only by the usage engine; staff compare them with the jobs."""


    @admin.display(description="organisation", ordering="organisation__org_id")
    def organisation_id_label(self, obj):
        return obj.organisation.org_id

    @admin.display(description="month", ordering="month")
    def month_label(self, obj):
        return format_month(obj.month) if obj.month else "all months"


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAggregateAdmin):
    list_display = (
        "organisation_id_label",
        "month_label",
        "api_key",
        "tier",
        "is_free",
        "jobs",
        "completed_jobs",
        "audio_duration_seconds",
        "transcription_tokens",
        "note_tokens",
        "jobs_link",
    )
    list_select_related = ("organisation", "api_key")
    list_filter = (MonthFilter, "is_free", OrganisationFilter)
    ordering = ("-month", "organisation_id", "api_key_id", "tier", "is_free")
    fieldsets = (
        (None, {"fields": ("organisation", "month", "api_key", "tier", "is_free")}),
        (
            "Counts",
            {
                "fields": (
                    "jobs",
                    "completed_jobs",
                    "audio_duration_seconds",
                    "transcription_tokens",
                    "note_tokens",
                )
            },
        ),
    )

    @admin.display(description="raw jobs")
    def jobs_link(self, obj):
        params = {
            OrganisationFilter.parameter_name: obj.organisation.org_id,
            MonthFilter.parameter_name: format_month(obj.month),
            "tier": obj.tier,
            "is_free__exact": int(obj.is_free),
        }
        if obj.api_key_id is None:
            params["source__exact"] = Job.Source.WEB
        else:
            params["api_key__id__exact"] = obj.api_key_id
        return format_html('<a href="{}">Jobs</a>', job_list_url(**params))


@admin.register(LanguageUsage)
class LanguageUsageAdmin(ReadOnlyAggregateAdmin):
    list_display = (
        "organisation_id_label",
        "month_label",
        "language",
        "via_api",
        "jobs",
        "completed_jobs",
        "audio_duration_seconds",
        "jobs_link",
    )
    list_select_related = ("organisation",)
    list_filter = (MonthFilter, LanguageFilter, "via_api", OrganisationFilter)
    ordering = ("-month", "organisation_id", "language", "via_api")
    fieldsets = (
        (None, {"fields": ("organisation", "month", "language", "via_api")}),
        ("Counts", {"fields": ("jobs", "completed_jobs", "audio_duration_seconds")}),
    )

    @admin.display(description="raw jobs")
    def jobs_link(self, obj):
        params = {
            OrganisationFilter.parameter_name: obj.organisation.org_id,
            MonthFilter.parameter_name: format_month(obj.month),
            LanguageFilter.parameter_name: obj.language,
            "source__exact": Job.Source.API if obj.via_api else Job.Source.WEB,
        }
        return format_html('<a href="{}">Jobs</a>', job_list_url(**params))


@admin.register(ApiCallCount)
class ApiCallCountAdmin(ReadOnlyAggregateAdmin):
    list_display = ("organisation_id_label", "api_key", "month_label", "calls")
    list_select_related = ("organisation", "api_key")
    list_filter = (MonthFilter, OrganisationFilter)
    ordering = ("-month", "organisation_id", "api_key_id")
    fieldsets = ((None, {"fields": ("organisation", "api_key", "month", "calls")}),)


@admin.register(StaleMonth)
class StaleMonthAdmin(ReadOnlyAggregateAdmin):
    """Months waiting for a recompute; they are resolved at the next read of the organisation."""

    list_display = ("organisation_id_label", "month_label", "created_at")
    list_select_related = ("organisation",)
    list_filter = (OrganisationFilter,)
    ordering = ("-created_at", "-id")
    fieldsets = ((None, {"fields": ("organisation", "month", "created_at")}),)


@admin.register(TaskLock)
class TaskLockAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    """The leases that keep nightly recomputes from overlapping; a lease past its time is free."""

    list_display = ("name", "locked_until", "owner")
    ordering = ("name",)
    readonly_fields = ("name", "locked_until", "owner")

