"""Staff admin of users and their memberships of organisations."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from portal.admin_base import FastRowsMixin, PortalModelAdmin

from ..models import Membership, User


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
