"""What every model admin of the portal shares: the base class, the read-only mixin, and the
helpers that link admin pages to each other. No app's admin imports another app's admin; both
import this module."""

from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

admin.site.site_header = "Usage Portal staff admin"
admin.site.site_title = "Usage Portal admin"
admin.site.index_title = "Organisations, keys, jobs and pricing"


def job_list_url(**params) -> str:
    """The admin job list narrowed by ``params`` (query-string filters of ``usage.admin.jobs.JobAdmin``)."""
    return f"{reverse('admin:usage_job_changelist')}?{urlencode(params)}"


def adopt_saved(target, created) -> None:
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


CONFIRMATION_LIST_LIMIT = 100
# Fields holding secrets or what is derived from them: no admin URL may filter on them, or a
# staff member could test guesses of a key or password one lookup at a time.
SECRET_FIELD_NAMES = frozenset({"digest", "lookup", "password"})


def confirmation_page(
    model_admin,
    request,
    queryset,
    *,
    action: str,
    title: str,
    question: str,
    button: str,
    consequence: str = "",
) -> TemplateResponse | None:
    """None once the POST confirms the action ``action`` on ``queryset``; otherwise the
    intermediate page asking to confirm it (as ``delete_selected`` does)."""
    if request.POST.get("confirm") == "yes":
        return None
    selected = list(queryset.values_list("pk", flat=True))
    shown = list(queryset[:CONFIRMATION_LIST_LIMIT])
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "question": question,
        "consequence": consequence,
        "button": button,
        "action": action,
        "shown": shown,
        "more": max(0, len(selected) - len(shown)),
        "selected": selected,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/portal/confirm_action.html", context)


class PortalModelAdmin(FastRowsMixin, admin.ModelAdmin):
    """Base of the portal's model admins: no URL lookup may touch a secret field
    (``SECRET_FIELD_NAMES``); such a URL is a 400 (``DisallowedModelAdminLookup``), as Django's
    ``UserAdmin`` does for passwords."""

    def lookup_allowed(self, lookup, value, request):
        if SECRET_FIELD_NAMES.intersection(lookup.split("__")):
            return False
        return super().lookup_allowed(lookup, value, request)


class ReadOnlyAdminMixin:
    """Staff may look but not add, change or delete: rows written only by services or engines.
    Works for model admins and inlines alike."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
