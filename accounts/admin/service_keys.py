"""Staff admin of service keys (the job platform's keys for ``/api/v1/ingest/``). The secret is
shown once, on the page that answers the creation; the digest never. Every write goes through
``accounts.services``."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from portal.admin_base import PortalModelAdmin, adopt_saved

from ..models import ServiceKey
from ..services import service_key_create, service_key_revoke, service_key_scope_set
from .keys import KeyStatusFilter


@admin.register(ServiceKey)
class ServiceKeyAdmin(PortalModelAdmin):
    """Service keys: name, scope (organisations; none means all), last use, revocation. Only the
    scope of an unrevoked key can be changed; revoked keys are read-only."""

    list_display = ("name", "prefix", "scope", "is_active", "created_at", "last_used_at", "revoked_at")
    list_filter = (KeyStatusFilter,)
    search_fields = ("name", "lookup")
    search_help_text = "Key name, or the lookup part of its prefix (upsk_<lookup>)."
    filter_horizontal = ("organisations",)
    actions = ("revoke_keys",)
    add_fieldsets = ((None, {"fields": ("name", "organisations")}),)
    fieldsets = (
        (None, {"fields": ("name", "prefix", "organisations")}),
        ("History", {"fields": ("created_at", "created_by", "last_used_at", "revoked_at")}),
    )
    change_form_template = "admin/accounts/apikey/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("organisations")

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_revoked:
            return False
        return super().has_change_permission(request, obj)

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.revoke_servicekey")

    @admin.display(description="scope")
    def scope(self, obj):
        org_ids = sorted(organisation.org_id for organisation in obj.organisations.all())
        return ", ".join(org_ids) if org_ids else "all organisations"

    @admin.display(description="active", boolean=True)
    def is_active(self, obj):
        return not obj.is_revoked

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="accounts_servicekey_revoke",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_revoke"] = obj is not None and not obj.is_revoked and self.has_revoke_permission(request)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return  # only the scope changes, in save_related
        created = service_key_create(
            name=obj.name, organisations=form.cleaned_data["organisations"], created_by=request.user
        )
        adopt_saved(obj, created.service_key)
        messages.warning(
            request,
            format_html(
                "This is the only time the secret of “{}” is shown. Copy it now: <code>{}</code>",
                created.service_key.name,
                created.plaintext,
            ),
        )

    def save_related(self, request, form, formsets, change):
        if change:
            service_key_scope_set(service_key=form.instance, organisations=form.cleaned_data["organisations"])

    def response_add(self, request, obj, post_url_continue=None):
        # Rendered here rather than after a redirect, so the message holding the secret is
        # consumed by this response and never stored in a cookie or the session.
        context = {
            **self.admin_site.each_context(request),
            "title": "Service key created",
            "opts": self.opts,
            "service_key": obj,
            "scope": self.scope(obj),
            "change_url": reverse("admin:accounts_servicekey_change", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/accounts/servicekey/created.html", context)

    def revoke_view(self, request: HttpRequest, object_id: str):
        """POST only: revoke one key, then go back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        service_key = self.get_object(request, unquote(object_id))
        if service_key is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        if service_key.is_revoked:
            self.message_user(request, f"Service key {service_key} was already revoked.", messages.INFO)
        else:
            service_key_revoke(service_key=service_key)
            self.log_change(request, service_key, "Revoked.")
            self.message_user(request, f"Revoked service key {service_key}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:accounts_servicekey_change", args=[service_key.pk]))

    @admin.action(description="Revoke the selected service keys", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        revoked = 0
        for service_key in queryset.filter(revoked_at__isnull=True):
            service_key_revoke(service_key=service_key)
            self.log_change(request, service_key, "Revoked.")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} service key(s).", messages.SUCCESS)
