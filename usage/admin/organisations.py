"""The organisation's admin page: the staff's billing console.

Details, members and keys of an organisation, and its billing: the usage panel (this month and
all time, per tier), the plan and free-job allowance, and the recompute, allowance and
(de)activation actions. It lives with usage because most of it is usage; every write goes
through ``accounts.services`` or ``usage.services`` and every figure comes from
``usage.selectors``. Permissions beyond Django's model permissions:
``accounts.change_free_job_allowance``, ``accounts.change_organisation_plan`` and
``usage.recompute_usage`` (the Support and Finance roles in ``accounts.roles`` hold them).

(Long because the billing console's panel, forms and actions belong together.)
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import connection
from django.db.models import Count, Max, Min, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.html import format_html

from accounts.models import ApiKey, Membership, Organisation
from accounts.services import organisation_create, organisation_set_active
from portal.admin_base import (
    PortalModelAdmin,
    ReadOnlyAdminMixin,
    adopt_saved,
    confirmation_page,
    job_list_url,
)
from usage.engine.recompute import usage_recompute
from usage.models import MonthlyUsage
from usage.months import current_month, format_month
from usage.pricing import present_money, present_percent
from usage.selectors import usage_all_time, usage_report
from usage.services import organisation_free_allowance_set, organisation_plan_set

CUSTOMER_USAGE_PATH = "/orgs/{org_id}/usage/"
# A recompute runs inside the request; bigger batches belong to `manage.py recompute_usage`.
RECOMPUTE_ACTION_LIMIT = 100


def customer_usage_path(organisation: Organisation) -> str:
    """The customer-facing usage page of ``organisation`` (served by the portal, not the admin)."""
    return CUSTOMER_USAGE_PATH.format(org_id=organisation.org_id)


def _count_of(model, **filters) -> Coalesce:
    """A correlated ``COUNT`` of ``model`` rows per outer organisation; evaluated per row shown."""
    counted = (
        model.objects.filter(organisation=OuterRef("pk"), **filters)
        .order_by()
        .values("organisation")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(counted), 0)


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "organisation"
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    verbose_name = "member"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").order_by("user__username")


class OrganisationApiKeyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The organisation's keys, read-only: keys are created and revoked on their own pages."""

    model = ApiKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("name")


class FreeJobAllowanceForm(forms.Form):
    allowance = forms.IntegerField(
        min_value=0,
        # The column's own bound (2^31 - 1 on PostgreSQL), as on the organisation's change page.
        max_value=connection.ops.integer_field_range("PositiveIntegerField")[1],
        label="Free-job allowance",
        help_text="The organisation's first N jobs of all time cost nothing.",
    )


def _usage_panel_context(organisation: Organisation) -> dict:
    """What the usage panel shows: this month and all time, from the one usage report."""
    this_month = current_month()
    api = usage_all_time(organisation=organisation)  # resolves stale marks before the span is read
    span = MonthlyUsage.objects.filter(organisation=organisation).aggregate(
        first=Min("month"), last=Max("month")
    )
    first = min(span["first"] or this_month, this_month)
    last = max(span["last"] or this_month, this_month)
    month = usage_report(organisation=organisation, start_month=this_month, end_month=this_month)
    all_time = usage_report(organisation=organisation, start_month=first, end_month=last)
    plan = month.plan
    month_usage = month.months[0]
    current_tier = month_usage.current_tier(plan)
    highest_reached = plan.tier_at(max(m.highest_tier for m in all_time.months))

    currency = plan.currency

    def money(amount) -> str:
        return f"{present_money(amount):,f} {currency}"

    def count(value: int) -> str:
        return f"{value:,}"

    rows = [
        ("Jobs", count(month.totals.jobs), count(all_time.totals.jobs)),
        (
            "Completed jobs (transcript and LRC)",
            count(month.totals.completed_jobs),
            count(all_time.totals.completed_jobs),
        ),
        ("Free jobs", count(month.totals.free_jobs), count(all_time.totals.free_jobs)),
        (
            "Audio seconds",
            count(month.totals.audio_duration_seconds),
            count(all_time.totals.audio_duration_seconds),
        ),
        ("Base cost", money(month.totals.base_cost), money(all_time.totals.base_cost)),
        ("Final cost", money(month.totals.final_cost), money(all_time.totals.final_cost)),
        ("Savings", money(month.totals.savings), money(all_time.totals.savings)),
        (
            "Effective discount %",
            present_percent(month.totals.effective_discount_percentage),
            present_percent(all_time.totals.effective_discount_percentage),
        ),
        ("API calls (requests to the portal's API)", count(month.api_calls), count(all_time.api_calls)),
    ]
    tiers = [
        {
            "name": tier.name,
            "first_rank": tier.first_rank,
            "discount": present_percent(tier.discount_percent),
            "month_jobs": month.totals.tiers.get(tier.name, 0),
            "all_time_jobs": all_time.totals.tiers.get(tier.name, 0),
            "is_current": tier.name == current_tier.name,
        }
        for tier in plan.tiers
    ]
    return {
        "organisation": organisation,
        "plan": plan,
        "month_label": format_month(this_month),
        "all_time_label": f"{format_month(first)} – {format_month(last)}",
        "rows": rows,
        "tiers": tiers,
        "current_tier": current_tier,
        "jobs_until_next_tier": month_usage.jobs_until_next_tier(plan),
        "highest_tier_reached": highest_reached,
        "free_jobs_left": month.free_jobs_left,
        "api": api,
    }


@admin.register(Organisation)
class OrganisationAdmin(PortalModelAdmin):
    """Organisations. Plan and free-job allowance changes go through the usage services, so the
    stored aggregates follow; Finance may change only those two fields."""

    list_display = (
        "org_id",
        "name",
        "is_active",
        "plan_name",
        "free_job_allowance",
        "member_count",
        "key_count",
        "created_at",
        "jobs_link",
    )
    list_display_links = ("org_id", "name")
    list_filter = ("is_active", "plan")
    list_select_related = ("plan",)
    search_fields = ("org_id", "name")
    search_help_text = "Organisation id or name."
    ordering = ("name",)
    autocomplete_fields = ("plan",)
    inlines = (MembershipInline, OrganisationApiKeyInline)
    actions = ("recompute_usage", "deactivate", "reactivate", "set_free_job_allowance")
    add_fieldsets = (
        (None, {"fields": ("org_id", "name", "is_active")}),
        ("Billing", {"fields": ("plan", "free_job_allowance")}),
    )
    fieldsets = (
        (None, {"fields": ("org_id", "name", "is_active", "created_at")}),
        ("Billing", {"fields": ("plan", "free_job_allowance")}),
        ("Usage", {"fields": ("customer_usage_link", "usage_panel")}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=_count_of(Membership), key_count=_count_of(ApiKey, revoked_at__isnull=True)
            )
        )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "org_id" in form.base_fields:
            form.base_fields["org_id"].required = False
            form.base_fields["org_id"].help_text = "Leave empty for a random id. It cannot change later."
        return form

    def get_readonly_fields(self, request, obj=None):
        user = request.user
        readonly = ["created_at", "customer_usage_link", "usage_panel"]
        if obj is not None:
            # The id is public: it is in API responses, import files and customer URLs.
            readonly.append("org_id")
            if not user.has_perm("accounts.change_organisation"):
                readonly += ["name", "is_active"]
        if not user.has_perm("accounts.change_organisation_plan"):
            readonly.append("plan")
        if not user.has_perm("accounts.change_free_job_allowance"):
            readonly.append("free_job_allowance")
        return readonly

    def get_list_display(self, request):
        if request.user.has_perm("usage.view_job"):
            return self.list_display
        return tuple(column for column in self.list_display if column != "jobs_link")

    def has_change_permission(self, request, obj=None):
        # Finance edits the billing fields of an organisation without changing anything else.
        return (
            super().has_change_permission(request, obj)
            or self.has_change_plan_permission(request)
            or self.has_change_allowance_permission(request)
        )

    def has_edit_details_permission(self, request):
        return request.user.has_perm("accounts.change_organisation")

    def has_change_plan_permission(self, request):
        return request.user.has_perm("accounts.change_organisation_plan")

    def has_change_allowance_permission(self, request):
        return request.user.has_perm("accounts.change_free_job_allowance")

    def has_recompute_permission(self, request):
        return request.user.has_perm("usage.recompute_usage")

    def view_on_site(self, obj):
        return customer_usage_path(obj)

    @admin.display(description="plan", ordering="plan__name")
    def plan_name(self, obj):
        return obj.plan.name if obj.plan else "standard (default)"

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(description="active keys", ordering="key_count")
    def key_count(self, obj):
        return obj.key_count

    @admin.display(description="jobs")
    def jobs_link(self, obj):
        return format_html('<a href="{}">Jobs</a>', job_list_url(org_id=obj.org_id))

    @admin.display(description="customer usage page")
    def customer_usage_link(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        usage_path = customer_usage_path(obj)
        return format_html('<a href="{}">{}</a>', usage_path, usage_path)

    @admin.display(description="usage")
    def usage_panel(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return render_to_string("admin/accounts/organisation/usage_panel.html", _usage_panel_context(obj))

    def save_model(self, request, obj, form, change):
        if not change:
            adopt_saved(
                obj,
                organisation_create(
                    name=obj.name,
                    org_id=obj.org_id or None,
                    plan=obj.plan,
                    free_job_allowance=obj.free_job_allowance,
                ),
            )
            return
        through_services = {"plan", "free_job_allowance", "is_active"}
        plain_fields = [name for name in form.changed_data if name not in through_services]
        if plain_fields:
            obj.save(update_fields=plain_fields)
        if "is_active" in form.changed_data:
            organisation_set_active(organisation=obj, is_active=obj.is_active)
        if "plan" in form.changed_data:
            new_plan = obj.plan
            # The service compares the tier ladder of the stored plan with the new one.
            obj.plan_id = Organisation.objects.values_list("plan_id", flat=True).get(pk=obj.pk)
            organisation_plan_set(organisation=obj, plan=new_plan)
        if "free_job_allowance" in form.changed_data:
            organisation_free_allowance_set(organisation=obj, allowance=obj.free_job_allowance)

    @admin.action(description="Recompute usage of the selected organisations", permissions=["recompute"])
    def recompute_usage(self, request, queryset):
        organisations = list(queryset[: RECOMPUTE_ACTION_LIMIT + 1])
        if len(organisations) > RECOMPUTE_ACTION_LIMIT:
            self.message_user(
                request,
                f"Select at most {RECOMPUTE_ACTION_LIMIT} organisations; recompute more with "
                "`manage.py recompute_usage` (the nightly run does all of them).",
                messages.ERROR,
            )
            return
        result = usage_recompute(organisation_ids=[organisation.pk for organisation in organisations])
        summary = (
            f"{result.months} month(s) checked, {result.rows_corrected} aggregate row(s) corrected, "
            f"{result.jobs_retiered} job tier(s) and {result.free_flags_fixed} free flag(s) changed"
        )
        for organisation in organisations:
            self.log_change(request, organisation, "Recomputed usage.")
        self.message_user(
            request,
            f"Recomputed the usage of {len(organisations)} organisation(s): {summary}.",
            messages.SUCCESS,
        )

    @admin.action(description="Deactivate the selected organisations", permissions=["edit_details"])
    def deactivate(self, request, queryset):
        confirmation = confirmation_page(
            self,
            request,
            queryset,
            action="deactivate",
            title="Deactivate organisations?",
            question="Deactivate these organisations?",
            consequence="Their API keys are refused (403) until they are reactivated.",
            button="Yes, deactivate",
        )
        if confirmation is not None:
            return confirmation
        self._set_active(request, queryset, is_active=False)
        return None

    @admin.action(description="Reactivate the selected organisations", permissions=["edit_details"])
    def reactivate(self, request, queryset):
        self._set_active(request, queryset, is_active=True)

    def _set_active(self, request, queryset, *, is_active: bool) -> None:
        changed = [
            organisation
            for organisation in queryset
            if organisation_set_active(organisation=organisation, is_active=is_active)
        ]
        verb = "Reactivated" if is_active else "Deactivated"
        for organisation in changed:
            self.log_change(request, organisation, f"{verb}.")
        self.message_user(request, f"{verb} {len(changed)} organisation(s).", messages.SUCCESS)

    @admin.action(
        description="Set the free-job allowance of the selected organisations",
        permissions=["change_allowance"],
    )
    def set_free_job_allowance(self, request, queryset):
        form = FreeJobAllowanceForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            allowance = form.cleaned_data["allowance"]
            organisations = list(queryset)
            for organisation in organisations:
                organisation_free_allowance_set(organisation=organisation, allowance=allowance)
                self.log_change(request, organisation, f"Set the free-job allowance to {allowance}.")
            self.message_user(
                request,
                f"Set the free-job allowance of {len(organisations)} organisation(s) to {allowance}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Set the free-job allowance",
            "opts": self.opts,
            "form": form,
            "organisations": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/accounts/organisation/set_free_job_allowance.html", context)
