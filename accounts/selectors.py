"""Reads of the accounts domain, and who may do what with an organisation's pages.

The access rules of the customer portal live here, in one place:

- a member (owner or member role) sees their organisation's usage and its key list;
- only an owner creates or revokes keys, invites people, changes roles and removes members;
- staff whose role lets them view organisations (``STAFF_VIEW_PERMISSION``: the Support and
  Finance groups, superusers, or the permission granted by hand) see any organisation's usage and
  key list, read-only, unless they are also its owner; staff without it are customers like any
  other (they see only their own organisations);
- anyone else learns nothing, not even that the organisation exists.
"""

from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from .models import ApiKey, Invitation, Membership, Organisation, User

STAFF_ORGANISATION_LIST_LIMIT = 50
STAFF_VIEW_PERMISSION = "accounts.view_organisation"


def staff_may_view_organisations(*, user: User) -> bool:
    """True when ``user`` is active staff whose role grants viewing every organisation."""
    return bool(
        user.is_authenticated and user.is_active and user.is_staff and user.has_perm(STAFF_VIEW_PERMISSION)
    )


@dataclass(frozen=True)
class OrganisationAccess:
    """What one user may do with one organisation's pages."""

    organisation: Organisation
    role: str | None
    is_staff: bool

    @property
    def is_member(self) -> bool:
        return self.role is not None

    @property
    def is_owner(self) -> bool:
        return self.role == Membership.Role.OWNER

    @property
    def is_staff_view(self) -> bool:
        """True when the user sees the organisation only because they are staff."""
        return self.is_staff and not self.is_member

    @property
    def can_view_keys(self) -> bool:
        return self.is_member or self.is_staff

    @property
    def can_manage_keys(self) -> bool:
        return self.is_owner

    @property
    def can_view_team(self) -> bool:
        return self.is_member or self.is_staff

    @property
    def can_manage_team(self) -> bool:
        return self.is_owner


def organisation_access(*, user: User, org_id: str) -> OrganisationAccess | None:
    """The access of ``user`` to the organisation with public id ``org_id``.

    None when the organisation does not exist or the user may not see it at all, so callers
    answer both the same way (404). One query (plus the permission lookup of staff who are not
    members).
    """
    if not user.is_authenticated or not user.is_active:
        return None
    role = Membership.objects.filter(organisation=OuterRef("pk"), user=user).values("role")[:1]
    organisation = Organisation.objects.annotate(viewer_role=Subquery(role)).filter(org_id=org_id).first()
    if organisation is None:
        return None
    if organisation.viewer_role is not None:
        # A member's access does not depend on a staff role: no permission lookup for them.
        is_staff = user.is_staff
    else:
        is_staff = staff_may_view_organisations(user=user)
        if not is_staff:
            return None
    return OrganisationAccess(organisation=organisation, role=organisation.viewer_role, is_staff=is_staff)


def membership_list(*, user: User) -> list[Membership]:
    """The user's memberships with their organisations, by organisation name (one query)."""
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.select_related("organisation")
        .filter(user=user)
        .order_by("organisation__name", "organisation__org_id")
    )


def organisation_list_for_staff(
    *, query: str = "", limit: int = STAFF_ORGANISATION_LIST_LIMIT
) -> list[Organisation]:
    """Organisations whose name or id contains ``query`` (all when empty), by name, at most ``limit``."""
    organisations: QuerySet[Organisation] = Organisation.objects.order_by("name", "org_id")
    query = query.strip()
    if query:
        organisations = organisations.filter(Q(name__icontains=query) | Q(org_id__icontains=query))
    return list(organisations[:limit])


def api_key_list(*, organisation: Organisation) -> list[ApiKey]:
    """Every key of the organisation: active ones first, then revoked, each by name (one query)."""
    return sorted(
        ApiKey.objects.filter(organisation=organisation),
        key=lambda api_key: (api_key.is_revoked, api_key.name.lower(), api_key.name),
    )


def api_key_get(*, organisation: Organisation, key_id: int) -> ApiKey | None:
    """The key ``key_id`` if it belongs to ``organisation``, else None."""
    return ApiKey.objects.filter(organisation=organisation, pk=key_id).first()


def api_key_ids_with_usage(*, key_ids: Collection[int]) -> set[int]:
    """Those of ``key_ids`` whose keys have jobs or counted API calls (one query).

    The usage tables are reached through the keys' reverse relations, so this app does not
    import the usage app that depends on it.
    """
    job_model = ApiKey._meta.get_field("jobs").related_model
    call_count_model = ApiKey._meta.get_field("call_counts").related_model
    return set(
        ApiKey.objects.filter(pk__in=key_ids)
        .filter(
            Exists(job_model.objects.filter(api_key=OuterRef("pk")))
            | Exists(call_count_model.objects.filter(api_key=OuterRef("pk")))
        )
        .values_list("pk", flat=True)
    )


def team_list(*, organisation: Organisation) -> list[Membership]:
    """The organisation's memberships with their users: owners first, then by username (one query)."""
    return sorted(
        Membership.objects.select_related("user").filter(organisation=organisation),
        key=lambda membership: (membership.role != Membership.Role.OWNER, membership.user.username.lower()),
    )


def invitation_list_pending(*, organisation: Organisation, since) -> list[Invitation]:
    """Invitations of the organisation not yet accepted and created after ``since``, newest first."""
    return list(
        Invitation.objects.select_related("invited_by").filter(
            organisation=organisation, accepted_at__isnull=True, created_at__gt=since
        )
    )
