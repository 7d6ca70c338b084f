"""Staff admin for organisations, members, API keys and users.

Callers only: every write goes through ``accounts.services`` or ``usage.services``, and every usage
figure comes from ``usage.selectors``. Permissions beyond Django's model permissions:
``accounts.revoke_apikey``, ``accounts.change_free_job_allowance``,
``accounts.change_organisation_plan`` and ``usage.recompute_usage`` (the Support and Finance roles
in ``accounts.roles`` hold them).
"""

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, Max, Min, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from usage.models import ApiCallCount, Job, MonthlyUsage
from usage.months import current_month, format_month
from usage.pricing import present_money, present_percent
from usage.selectors import usage_all_time, usage_report
from usage.services import (
    organisation_free_allowance_set,
    organisation_plan_set,
    usage_recompute,
    usage_version_bump,
)

from .keys import KEY_PREFIX, LOOKUP_LENGTH
from .models import ApiKey, Membership, Organisation, User
from .services import api_key_create, api_key_revoke, organisation_create, organisation_set_active

CUSTOMER_USAGE_PATH = "/orgs/{org_id}/usage/"
# A recompute runs inside the request; bigger batches belong to `manage.py recompute_usage`.
RECOMPUTE_ACTION_LIMIT = 100

admin.site.site_header = "Usage Portal staff admin"
admin.site.site_title = "Usage Portal admin"
admin.site.index_title = "Organisations, keys, jobs and pricing"


def customer_usage_path(organisation: Organisation) -> str:
    """The customer-facing usage page of ``organisation`` (served by the portal, not the admin)."""
    return CUSTOMER_USAGE_PATH.format(org_id=organisation.org_id)


def job_list_url(**params) -> str:
    """The admin job list narrowed by ``params`` (query-string filters of ``usage.admin.JobAdmin``)."""
    return f"{reverse('admin:usage_job_changelist')}?{urlencode(params)}"


def _adopt(target, created) -> None:
    """Make the admin's unsaved form instance become the row a service created.

    The admin goes on using its own instance (inlines, log entries, redirects), so it must carry
    the new primary key and every value the service set.
    """
    target.__dict__.update(created.__dict__)


class FastRowsMixin:
    """List pages render their row checkboxes as plain HTML.

    Django renders each one through a form widget template, about a millisecond per row: a third
    of the job list's server time at 100 rows.
    """

    def action_checkbox(self, obj):
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" '
            'aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            obj,
        )


class PortalModelAdmin(FastRowsMixin, admin.ModelAdmin):
    """Base of the portal's model admins."""


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


# --- Organisations ---------------------------------------------------------------------------


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


class OrganisationApiKeyInline(admin.TabularInline):
    """The organisation's keys, read-only: keys are created and revoked on their own pages."""

    model = ApiKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("name")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class FreeJobAllowanceForm(forms.Form):
    allowance = forms.IntegerField(
        min_value=0,
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

    rows = [
        ("Jobs", month.totals.jobs, all_time.totals.jobs),
        ("Completed jobs (transcript and LRC)", month.totals.completed_jobs, all_time.totals.completed_jobs),
        ("Free jobs", month.totals.free_jobs, all_time.totals.free_jobs),
        ("Audio seconds", month.totals.audio_duration_seconds, all_time.totals.audio_duration_seconds),
        ("Base cost", present_money(month.totals.base_cost), present_money(all_time.totals.base_cost)),
        ("Final cost", present_money(month.totals.final_cost), present_money(all_time.totals.final_cost)),
        ("Savings", present_money(month.totals.savings), present_money(all_time.totals.savings)),
        (
            "Effective discount %",
            present_percent(month.totals.effective_discount_percentage),
            present_percent(all_time.totals.effective_discount_percentage),
        ),
        ("API calls", month.api_calls, all_time.api_calls),
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
            _adopt(
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
            f"{result.jobs_retiered} job tier(s) and {result.jobs_refreed} free flag(s) changed"
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
        self._set_active(request, queryset, is_active=False)

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


# --- API keys --------------------------------------------------------------------------------


def _keys_with_usage(keys) -> set[int]:
    """Primary keys of those ``keys`` that have jobs or counted API calls (one query)."""
    ids = [key.pk for key in keys]
    return set(
        ApiKey.objects.filter(pk__in=ids)
        .filter(
            Exists(Job.objects.filter(api_key=OuterRef("pk")))
            | Exists(ApiCallCount.objects.filter(api_key=OuterRef("pk")))
        )
        .values_list("pk", flat=True)
    )


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return (("active", "Active"), ("revoked", "Revoked"))

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(PortalModelAdmin):
    """API keys. The secret is shown once, on the page that answers the creation; the digest
    never. Revoked keys are read-only, and keys with usage cannot be deleted (revoke them)."""

    list_display = ("name", "organisation", "prefix", "is_active", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("organisation",)
    list_filter = (KeyStatusFilter,)
    search_fields = ("name", "organisation__org_id", "organisation__name")
    search_help_text = "Key name, organisation id or name, or a key's prefix (upk_…)."
    ordering = ("organisation__name", "name")
    autocomplete_fields = ("organisation",)
    actions = ("revoke_keys",)
    add_fieldsets = ((None, {"fields": ("organisation", "name")}),)
    fieldsets = (
        (None, {"fields": ("organisation", "name", "prefix", "jobs_link")}),
        ("History", {"fields": ("created_at", "created_by", "last_used_at", "revoked_at")}),
    )
    change_form_template = "admin/accounts/apikey/change_form.html"

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "organisation",
            "prefix",
            "jobs_link",
            "created_at",
            "created_by",
            "last_used_at",
            "revoked_at",
        )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.startswith(KEY_PREFIX):
            # A prefix, or a whole pasted key: only its public lookup part is ever compared.
            lookup = term[len(KEY_PREFIX) : len(KEY_PREFIX) + LOOKUP_LENGTH]
            return queryset.filter(lookup=lookup), False
        return super().get_search_results(request, queryset, search_term)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_revoked:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and _keys_with_usage([obj]):
            return False
        return super().has_delete_permission(request, obj)

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.revoke_apikey")

    def get_deleted_objects(self, objs, request):
        in_use = _keys_with_usage(objs)
        if in_use:
            # Answer before Django collects the protected jobs: a busy key has millions.
            protected = [
                f"API key {key} has jobs or API calls: revoke it instead of deleting it."
                for key in objs
                if key.pk in in_use
            ]
            return [], {}, set(), protected
        return super().get_deleted_objects(objs, request)

    @admin.display(description="active", boolean=True)
    def is_active(self, obj):
        return not obj.is_revoked

    @admin.display(description="jobs")
    def jobs_link(self, obj):
        return format_html('<a href="{}">Jobs of this key</a>', job_list_url(api_key__id__exact=obj.pk))

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="accounts_apikey_revoke",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_revoke"] = obj is not None and not obj.is_revoked and self.has_revoke_permission(request)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        if change:
            if form.changed_data:
                obj.save(update_fields=form.changed_data)
            if "name" in form.changed_data:  # key names are the keys of /usage's api_keys
                usage_version_bump(organisation_ids=[obj.organisation_id])
            return
        created = api_key_create(organisation=obj.organisation, name=obj.name, created_by=request.user)
        _adopt(obj, created.api_key)
        messages.warning(
            request,
            format_html(
                "This is the only time the secret of “{}” is shown. Copy it now: <code>{}</code>",
                created.api_key.name,
                created.plaintext,
            ),
        )

    def response_add(self, request, obj, post_url_continue=None):
        # Rendered here rather than after a redirect, so the message holding the secret is
        # consumed by this response and never stored in a cookie or the session.
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "api_key": obj,
            "change_url": reverse("admin:accounts_apikey_change", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/accounts/apikey/created.html", context)

    def revoke_view(self, request: HttpRequest, object_id: str):
        """POST only: revoke one key, then go back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        if api_key.is_revoked:
            self.message_user(request, f"API key {api_key} was already revoked.", messages.INFO)
        else:
            api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            self.message_user(request, f"Revoked API key {api_key}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:accounts_apikey_change", args=[api_key.pk]))

    @admin.action(description="Revoke the selected API keys", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)


# --- Users and memberships ------------------------------------------------------------------


class UserMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ("organisation",)
    fields = ("organisation", "role", "created_at")
    readonly_fields = ("created_at",)
    verbose_name = "organisation membership"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organisation")


@admin.register(User)
class UserAdmin(FastRowsMixin, DjangoUserAdmin):
    """Django's user admin, plus the organisations a user belongs to."""

    inlines = (UserMembershipInline,)
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "is_superuser",
        "is_active",
        "last_login",
    )
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")


@admin.register(Membership)
class MembershipAdmin(PortalModelAdmin):
    list_display = ("user", "organisation", "role", "created_at")
    list_filter = ("role",)
    list_select_related = ("user", "organisation")
    search_fields = ("user__username", "user__email", "organisation__org_id", "organisation__name")
    search_help_text = "Username, email, organisation id or name."
    ordering = ("organisation__name", "user__username")
    autocomplete_fields = ("user", "organisation")
    fieldsets = ((None, {"fields": ("organisation", "user", "role", "created_at")}),)
    readonly_fields = ("created_at",)
