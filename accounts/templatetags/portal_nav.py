"""The organisation switcher of the page header."""

from django import template

from accounts.selectors import membership_list, staff_may_view_organisations

register = template.Library()


@register.inclusion_tag("accounts/_org_switcher.html", takes_context=True)
def org_switcher(context) -> dict:
    """The user's organisations, the current one (if the page has one) marked; one query."""
    request = context.get("request")
    user = getattr(request, "user", None)
    current = context.get("organisation")
    memberships = membership_list(user=user) if user is not None else []
    staff_view = user is not None and staff_may_view_organisations(user=user)
    return {
        "memberships": memberships,
        "current": current,
        "is_staff": staff_view,
        "show": len(memberships) > 1
        or staff_view
        or (current is not None and all(m.organisation_id != current.pk for m in memberships)),
    }
