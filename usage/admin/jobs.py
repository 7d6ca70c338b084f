"""Staff admin of jobs.

The job list must stay fast with millions of rows: it is ordered by an indexed column, filters
build index-friendly conditions, search is exact, no filter lists distinct values of the job
table, and on PostgreSQL big results show the planner's row estimate instead of being counted.
Every write goes through ``usage.services`` so the aggregates stay fresh.
"""


from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet

from portal.admin_base import PortalModelAdmin
from usage.models import Job
from usage.months import format_month
from usage.services import job_delete, job_save

from .base import (
    EstimatedCountMixin,
    JobMonthFilter,
    LanguageFilter,
    OrganisationFilter,
    OrganisationIdSearchMixin,
)

BULK_DELETE_LIMIT = 1000


class JobAdminForm(forms.ModelForm):
    class Meta:
        model = Job
        fields = (
            "organisation",
            "external_id",
            "api_key",
            "created_at",
            "status",
            "language",
            "audio_duration_seconds",
            "has_transcript",
            "has_lrc",
            "transcription_tokens",
            "note_tokens",
        )

    def clean(self):
        cleaned = super().clean()
        organisation = cleaned.get("organisation")
        organisation_id = organisation.pk if organisation else self.instance.organisation_id
        api_key = cleaned.get("api_key")
        if api_key and organisation_id and api_key.organisation_id != organisation_id:
            self.add_error("api_key", "This key belongs to another organisation.")
        external_id = cleaned.get("external_id")
        if (
            "organisation" not in self.fields
            and external_id
            and Job.objects.filter(organisation_id=organisation_id, external_id=external_id)
            .exclude(pk=self.instance.pk)
            .exists()
        ):
            # With the organisation read-only, Django leaves this constraint out of form validation.
            self.add_error("external_id", "This organisation already has a job with this external id.")
        return cleaned


@admin.register(Job)
class JobAdmin(EstimatedCountMixin, OrganisationIdSearchMixin, PortalModelAdmin):
    """Jobs, fast at millions of rows; edits and deletions keep the usage aggregates fresh."""

    form = JobAdminForm
    list_display = (
        "external_id",
        "organisation_label",
        "api_key_label",
        "source",
        "status",
        "language",
        "created_at",
        "tier",
        "is_free",
        "audio_duration_seconds",
        "transcription_tokens",
        "note_tokens",
    )
    list_select_related = ("organisation", "api_key")
    list_filter = ("status", LanguageFilter, "source", JobMonthFilter, "is_free", OrganisationFilter)
    search_fields = ("=external_id", "=organisation__org_id")
    search_help_text = "Exact external job id or organisation id (org_…)."
    ordering = ("-created_at", "-id")
    date_hierarchy = None  # its DISTINCT over the dates of every job would scan the whole table
    autocomplete_fields = ("organisation", "api_key")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "organisation",
                    "external_id",
                    "api_key",
                    "source",
                    "created_at",
                    "status",
                    "language",
                )
            },
        ),
        (
            "Work",
            {
                "fields": (
                    "audio_duration_seconds",
                    "has_transcript",
                    "has_lrc",
                    "transcription_tokens",
                    "note_tokens",
                )
            },
        ),
        ("Derived (maintained by the usage engine)", {"fields": ("month_label", "tier", "is_free")}),
    )

    def search_condition(self, term: str) -> Q:
        return Q(external_id=term) | super().search_condition(term)

    def get_readonly_fields(self, request, obj=None):
        derived = ("source", "month_label", "tier", "is_free")
        # A job's organisation is part of its identity (its external id is unique within it).
        return derived if obj is None else ("organisation", *derived)

    def get_sortable_by(self, request):
        # Over the whole table only the indexed order is cheap; one organisation's jobs sort fast.
        if request.GET.get(OrganisationFilter.parameter_name) or request.GET.get("q"):
            return self.get_list_display(request)
        return ("created_at",)

    @admin.display(description="organisation", ordering="organisation__org_id")
    def organisation_label(self, obj):
        return obj.organisation.org_id

    @admin.display(description="API key", ordering="api_key__name", empty_value="—")
    def api_key_label(self, obj):
        return obj.api_key.name if obj.api_key_id else None

    @admin.display(description="month")
    def month_label(self, obj):
        return format_month(obj.month) if obj.month else "—"

    def get_deleted_objects(self, objs, request):
        selected = objs.count() if isinstance(objs, QuerySet) else len(objs)
        if selected > BULK_DELETE_LIMIT:
            # Django would list every job on the confirmation page, then refresh usage per job.
            refusal = f"{selected:,} jobs are selected; delete at most {BULK_DELETE_LIMIT:,} at a time here."
            return [], {}, set(), [refusal]
        return super().get_deleted_objects(objs, request)

    def save_model(self, request, obj, form, change):
        job_save(job=obj)

    def delete_model(self, request, obj):
        job_delete(job=obj)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            job_delete(job=job)
