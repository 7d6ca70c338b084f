"""Staff admin of API keys. The secret is shown once, on the page that answers the creation; the
digest never. Every write goes through ``accounts.services``."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from portal.admin_base import PortalModelAdmin, adopt_saved, confirmation_page, job_list_url

from ..keys import KEY_PREFIX, LOOKUP_LENGTH
from ..models import ApiKey
from ..selectors import api_key_ids_with_usage
from ..services import api_key_create, api_key_rename, api_key_revoke


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
        if obj is not None and api_key_ids_with_usage(key_ids=[obj.pk]):
            return False
        return super().has_delete_permission(request, obj)

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.revoke_apikey")

    def get_deleted_objects(self, objs, request):
        in_use = api_key_ids_with_usage(key_ids=[key.pk for key in objs])
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
            other_fields = [name for name in form.changed_data if name != "name"]
            if other_fields:
                obj.save(update_fields=other_fields)
            if "name" in form.changed_data:
                api_key_rename(api_key=obj, name=obj.name)
            return
        created = api_key_create(organisation=obj.organisation, name=obj.name, created_by=request.user)
        adopt_saved(obj, created.api_key)
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
        confirmation = confirmation_page(
            self,
            request,
            queryset,
            action="revoke_keys",
            title="Revoke API keys?",
            question="Revoke these API keys?",
            consequence="Requests made with them are refused at once. A revoked key cannot be restored.",
            button="Yes, revoke",
        )
        if confirmation is not None:
            return confirmation
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)
        return None
