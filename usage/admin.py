"""Staff admin for jobs, pricing plans and the stored usage aggregates.

The job list must stay fast with millions of rows: it is ordered by an indexed column, filters
build index-friendly conditions, search is exact, no filter lists distinct values of the job
table, and on PostgreSQL big results show the planner's row estimate instead of being counted.
Every write of jobs or tiers goes through ``usage.services`` so the aggregates stay fresh.
"""

import json
from functools import cached_property

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.utils.html import format_html

from accounts.admin import PortalModelAdmin, job_list_url
from accounts.models import Organisation

from .models import (
    STANDARD_PLAN_NAME,
    ApiCallCount,
    Job,
    LanguageUsage,
    MonthlyUsage,
    PricingPlan,
    PricingTier,
    StaleMonth,
    TaskLock,
)
from .months import current_month, format_month, month_bounds, month_of, month_range, parse_month
from .pricing import tier_problems
from .services import job_delete, job_save, pricing_plan_changed, pricing_plan_tiers_changed


class EstimatedCountPaginator(Paginator):
    """Counts big PostgreSQL results from the planner's statistics instead of counting rows.

    ``COUNT(*)`` over millions of rows scans them on every page view. Unfiltered, the estimate is
    ``pg_class.reltuples`` (kept by ANALYZE and autovacuum); filtered, it is the row estimate of
    the query's plan. Either is used only when it says ``exact_below`` rows or more, and then
    ``is_estimate`` is set; smaller results, and every result on other databases, are counted.
    """

    exact_below = 50_000
    is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if (
            isinstance(queryset, QuerySet)
            and connections[queryset.db].vendor == "postgresql"
            and not queryset.query.is_empty()
        ):
            estimate = self._estimate(queryset)
            if estimate is not None and estimate >= self.exact_below:
                self.is_estimate = True
                return estimate
        return super().count

    @staticmethod
    def _estimate(queryset: QuerySet) -> int | None:
        connection = connections[queryset.db]
        with connection.cursor() as cursor:
            if not queryset.query.where:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [connection.ops.quote_name(queryset.model._meta.db_table)],
                )
                row = cursor.fetchone()
                return int(row[0]) if row and row[0] >= 0 else None
            sql, params = queryset.order_by().query.sql_with_params()
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])


class EstimatingChangeList(ChangeList):
    """A change list that corrects an estimated count once a page shows the list's end.

    A page with some rows but fewer than a full page is the last one, so the count is then
    known exactly; this keeps a planner's overestimate from offering pages that do not exist. (An
    empty page past the end only says the count is smaller, so it keeps the estimate.)
    """

    def get_results(self, request):
        super().get_results(request)
        paginator = self.paginator
        if not getattr(paginator, "is_estimate", False):
            return
        shown = len(self.result_list)
        if shown < self.list_per_page and (shown or self.page_num == 1):
            exact = (self.page_num - 1) * self.list_per_page + shown
            paginator.__dict__["count"] = exact
            paginator.__dict__.pop("num_pages", None)
            paginator.is_estimate = False
            self.result_count = exact
            self.multi_page = exact > self.list_per_page
            self.can_show_all = exact <= self.list_max_show_all


class EstimatedCountMixin:
    """Big lists: no full count next to the filtered one, estimated counts when large, and no
    "Show counts" link (it counts every choice of every filter over the whole table)."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator

    def get_changelist(self, request, **kwargs):
        return EstimatingChangeList


def _organisation_pk(org_id: str) -> int | None:
    return Organisation.objects.filter(org_id=org_id).values_list("pk", flat=True).first()


def _job_months() -> list:
    """Every month from the first job's to the later of the last job's and this month, newest
    first. Two index lookups, whatever the number of jobs."""
    created = Job.objects.order_by("created_at").values_list("created_at", flat=True)
    first, last = created.first(), created.last()
    if first is None:
        return [current_month()]
    return list(reversed(month_range(month_of(first), max(month_of(last), current_month()))))


def _distinct_languages() -> list[str]:
    """The languages that have stored usage, in order.

    A loose index scan (one index probe per language) over ``LanguageUsage``: the list is needed
    on every job list page, and neither the job table nor the aggregate table should be read in
    full for it.
    """
    connection = connections[LanguageUsage.objects.db]
    table = connection.ops.quote_name(LanguageUsage._meta.db_table)
    # The table name comes from model metadata, never from the request.
    sql = f"""
        WITH RECURSIVE languages(language) AS (
            SELECT MIN(language) FROM {table}
            UNION ALL
            SELECT (SELECT MIN(language) FROM {table} WHERE language > languages.language)
            FROM languages WHERE languages.language IS NOT NULL
        )
        SELECT language FROM languages WHERE language IS NOT NULL
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class OrganisationFilter(admin.SimpleListFilter):
    """``?org_id=org_…``: one organisation's rows. Shown only while in use (links from the
    organisation pages set it), since listing every organisation would not scale."""

    title = "organisation"
    parameter_name = "org_id"

    def lookups(self, request, model_admin):
        value = self.value()
        if not value:
            return []
        organisation = Organisation.objects.filter(org_id=value).first()
        self._organisation_pk = organisation.pk if organisation else None
        return [(value, str(organisation) if organisation else value)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if self._organisation_pk is None:
            return queryset.none()
        return queryset.filter(organisation_id=self._organisation_pk)


class MonthFilter(admin.SimpleListFilter):
    """``?month=YYYY-MM`` on the ``month`` column of an aggregate table."""

    title = "month"
    parameter_name = "month"

    def lookups(self, request, model_admin):
        return [(format_month(month), format_month(month)) for month in _job_months()]

    def month(self):
        try:
            return parse_month(self.value())
        except ValueError as exc:
            raise IncorrectLookupParameters(str(exc)) from exc

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(month=self.month())


class JobMonthFilter(MonthFilter):
    """``?month=YYYY-MM`` on jobs, as a ``created_at`` range: the same jobs as ``month=``, but an
    index range scan in the list's own order."""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        start, end = month_bounds(self.month())
        return queryset.filter(created_at__gte=start, created_at__lt=end)


class LanguageFilter(admin.SimpleListFilter):
    title = "language"
    parameter_name = "language"

    def lookups(self, request, model_admin):
        return [(language, language) for language in _distinct_languages()]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(language=self.value())


class OrganisationIdSearchMixin:
    """Search by exact organisation id: one indexed lookup, no ``LIKE`` across a join."""

    search_fields = ("=organisation__org_id",)
    search_help_text = "Exact organisation id (org_…)."

    def search_condition(self, term: str) -> Q:
        organisation_pk = _organisation_pk(term)
        return Q(organisation_id=organisation_pk) if organisation_pk is not None else Q(pk__in=[])

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(self.search_condition(term)), False


# --- Jobs ------------------------------------------------------------------------------------

# Bigger deletions belong in a data migration or a shell session, not in one admin request.
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


# --- Pricing ---------------------------------------------------------------------------------


class PricingTierForm(forms.ModelForm):
    discount_percent = forms.DecimalField(min_value=0, max_value=100, max_digits=5, decimal_places=2)

    class Meta:
        model = PricingTier
        fields = ("name", "first_rank", "discount_percent")


class PricingTierFormSet(BaseInlineFormSet):
    """Validates the plan's tiers as a whole ladder (``usage.pricing.tier_problems``)."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        ladder = sorted(
            (form.cleaned_data["first_rank"], form.cleaned_data["discount_percent"])
            for form in self.forms
            if form.cleaned_data and not self._should_delete_form(form)
        )
        problems = tier_problems(ladder)
        if problems:
            raise forms.ValidationError([problem[0].upper() + problem[1:] + "." for problem in problems])


class PricingTierInline(admin.TabularInline):
    model = PricingTier
    form = PricingTierForm
    formset = PricingTierFormSet
    extra = 0
    min_num = 1
    ordering = ("first_rank",)


def _tier_ladder(plan: PricingPlan) -> list[int]:
    return list(plan.tiers.order_by("first_rank").values_list("first_rank", flat=True))


@admin.register(PricingPlan)
class PricingPlanAdmin(PortalModelAdmin):
    """Pricing plans and their tiers. Prices and discounts apply when usage is read; a change
    of tier ranks marks every organisation on the plan for recompute."""

    list_display = (
        "name",
        "per_job_fee",
        "transcription_rate",
        "note_rate",
        "tier_summary",
        "organisation_count",
    )
    search_fields = ("name",)
    ordering = ("name",)
    inlines = (PricingTierInline,)
    fieldsets = (
        (None, {"fields": ("name",)}),
        ("Prices", {"fields": ("per_job_fee", "transcription_rate", "note_rate")}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related("tiers")
            .annotate(organisation_count=Count("organisations"))
        )

    def get_readonly_fields(self, request, obj=None):
        # Organisations without a plan are priced by the plan of this name.
        return ("name",) if obj is not None and obj.name == STANDARD_PLAN_NAME else ()

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.name == STANDARD_PLAN_NAME:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="tiers")
    def tier_summary(self, obj):
        tiers = sorted(obj.tiers.all(), key=lambda tier: tier.first_rank)
        return ", ".join(
            f"{tier.name} from {tier.first_rank:,} at {tier.discount_percent}%" for tier in tiers
        )

    @admin.display(description="organisations (assigned)", ordering="organisation_count")
    def organisation_count(self, obj):
        return obj.organisation_count

    def save_related(self, request, form, formsets, change):
        before = _tier_ladder(form.instance) if change else None
        super().save_related(request, form, formsets, change)
        if change:
            pricing_plan_changed(plan_id=form.instance.pk)
        if change and _tier_ladder(form.instance) != before:
            marked = pricing_plan_tiers_changed(plan_id=form.instance.pk)
            self.message_user(
                request,
                f"The tier ranks changed: the usage of {marked} organisation(s) will be recomputed "
                "at their next read (or by the nightly run).",
                messages.INFO,
            )


@admin.register(PricingTier)
class PricingTierAdmin(PortalModelAdmin):
    """Read-only: tiers are edited with their plan, where the whole ladder is validated."""

    list_display = ("plan", "name", "first_rank", "discount_percent")
    list_select_related = ("plan",)
    list_filter = ("plan",)
    search_fields = ("name", "plan__name")
    ordering = ("plan__name", "first_rank")
    fieldsets = ((None, {"fields": ("plan", "name", "first_rank", "discount_percent")}),)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Stored aggregates (read-only) ------------------------------------------------------------


class ReadOnlyAggregateAdmin(EstimatedCountMixin, OrganisationIdSearchMixin, PortalModelAdmin):
    """Stored aggregates are written only by the usage engine; staff compare them with the jobs."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
class TaskLockAdmin(PortalModelAdmin):
    """The leases that keep nightly recomputes from overlapping; a lease past its time is free."""

    list_display = ("name", "locked_until", "owner")
    ordering = ("name",)
    readonly_fields = ("name", "locked_until", "owner")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
