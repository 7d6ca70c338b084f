"""Writes of team management: owners invite people by email (a signed link that expires), change
members' roles and remove members; an organisation always keeps at least one owner."""

import datetime as dt
from collections.abc import Callable

from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.errors import DomainError
from portal.mail import subject_line

from .models import Invitation, Membership, Organisation, User

INVITATION_MAX_AGE = dt.timedelta(days=7)
_INVITATION_SALT = "accounts.invitation"


class LastOwnerError(DomainError):
    """The change would leave the organisation without an owner."""

    def __init__(self) -> None:
        super().__init__("An organisation must keep at least one owner: make someone else an owner first.")


class AlreadyMemberError(DomainError):
    """The invited address belongs to someone who is already a member."""

    def __init__(self) -> None:
        super().__init__("This person is already a member of the organisation.", field="email")


class InvalidInvitationError(DomainError):
    """An invitation link that is forged, expired, already used, or meant for another address."""


class InvitationNotFoundError(DomainError):
    """The invitation to cancel is not one of this organisation's."""

    def __init__(self) -> None:
        super().__init__("This invitation is not one of this organisation's.")


class NotAMemberError(DomainError):
    """The membership to change is not one of this organisation's."""

    def __init__(self) -> None:
        super().__init__("This person is not a member of the organisation.")


def invitation_token(*, invitation: Invitation) -> str:
    """The signed token of the invitation's link; it expires ``INVITATION_MAX_AGE`` after signing."""
    return signing.TimestampSigner(salt=_INVITATION_SALT).sign_object({"invitation": invitation.pk})


def invitation_from_token(*, token: str, lock: bool = False) -> Invitation:
    """The pending invitation of ``token``; ``InvalidInvitationError`` saying why when there is none.

    ``lock`` takes the invitation's row lock (inside a transaction), so it is accepted once only.
    """
    try:
        payload = signing.TimestampSigner(salt=_INVITATION_SALT).unsign_object(
            token, max_age=INVITATION_MAX_AGE
        )
    except signing.SignatureExpired:
        raise InvalidInvitationError(
            "This invitation has expired. Ask an owner of the organisation to invite you again."
        ) from None
    except signing.BadSignature:
        raise InvalidInvitationError(
            "This invitation link is not valid. Check that you copied all of it."
        ) from None
    invitations = Invitation.objects.select_related("organisation")
    if lock:
        invitations = invitations.select_for_update(of=("self",))
    invitation = invitations.filter(pk=payload.get("invitation")).first()
    if invitation is None:
        raise InvalidInvitationError(
            "This invitation was cancelled by an owner of the organisation. Ask them to invite "
            "you again if you still need to join."
        )
    if invitation.is_accepted:
        raise InvalidInvitationError("This invitation has already been used.")
    return invitation


def membership_invite(
    *,
    organisation: Organisation,
    email: str,
    role: str,
    invited_by: User | None,
    link_for: Callable[[str], str],
) -> Invitation:
    """Record an invitation of ``email`` with ``role`` and email it a link (after the commit).

    ``link_for(token)`` makes the absolute URL of the accept page. An address that already
    belongs to a member is refused (``AlreadyMemberError``).
    """
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise DomainError("Enter a valid email address.", field="email") from None
    if role not in Membership.Role.values:
        raise DomainError("Choose owner or member.", field="role")
    if Membership.objects.filter(organisation=organisation, user__email__iexact=email).exists():
        raise AlreadyMemberError()
    invitation = Invitation(organisation=organisation, email=email, role=role, invited_by=invited_by)
    invitation.full_clean()
    with transaction.atomic():
        invitation.save()
        link = link_for(invitation_token(invitation=invitation))
        inviter = invited_by.get_username() if invited_by else "An owner"
        transaction.on_commit(
            lambda: send_mail(
                subject=subject_line(f"You're invited to {organisation.name} on the Usage Portal"),
                message=(
                    f"{inviter} invited you to join {organisation.name} on the Usage Portal as "
                    f"{Membership.Role(role).label.lower()}.\n\nAccept the invitation here (the link "
                    f"works once, for {INVITATION_MAX_AGE.days} days):\n\n{link}\n\n"
                    "If you did not expect this, you can ignore this email.\n"
                ),
                from_email=None,
                recipient_list=[email],
            )
        )
    return invitation


def invitation_cancel(*, organisation: Organisation, invitation_id: int) -> Invitation:
    """Cancel a pending invitation of ``organisation``: its link stops working at once.

    The row is deleted under its lock, so an acceptance running at the same moment either
    finished first (then the invitation is used and cancelling it is refused) or finds nothing.
    ``InvitationNotFoundError`` for another organisation's invitation.
    """
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().filter(organisation=organisation, pk=invitation_id).first()
        )
        if invitation is None:
            raise InvitationNotFoundError()
        if invitation.is_accepted:
            raise DomainError("This invitation has already been accepted: remove the member instead.")
        invitation.delete()
    return invitation


def invitation_accept(
    *,
    token: str,
    user: User | None = None,
    username: str = "",
    password: str = "",
) -> Membership:
    """Accept the invitation of ``token``: ``user`` (whose email must be the invited one) joins,
    or, without a user, a new account ``username``/``password`` is made for the invited address.

    The invitation is used up; a used, expired or forged one, or another address, is refused
    with ``InvalidInvitationError`` (field errors of a new account are plain ``DomainError``s).
    """
    with transaction.atomic():
        invitation = invitation_from_token(token=token, lock=True)
        if user is not None:
            if (user.email or "").strip().lower() != invitation.email.lower():
                raise InvalidInvitationError(
                    "This invitation was sent to another email address. Log in with the account "
                    "of that address to accept it."
                )
        else:
            user = _invited_user_create(email=invitation.email, username=username, password=password)
        membership, created = Membership.objects.get_or_create(
            organisation=invitation.organisation, user=user, defaults={"role": invitation.role}
        )
        if not created and invitation.role == Membership.Role.OWNER and membership.role != invitation.role:
            membership.role = Membership.Role.OWNER
            membership.save(update_fields=["role"])
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def _invited_user_create(*, email: str, username: str, password: str) -> User:
    if User.objects.filter(email__iexact=email).exists():
        raise InvalidInvitationError(
            "An account with this email address already exists: log in with it to accept."
        )
    user = User(username=username.strip(), email=email)
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise DomainError(" ".join(messages), field=field if field == "username" else None) from None
    try:
        validate_password(password, user=user)
    except ValidationError as error:
        raise DomainError(" ".join(error.messages), field="password1") from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise DomainError("A user with that username already exists.", field="username") from None
    return user


def _memberships_locked(organisation: Organisation) -> dict[int, Membership]:
    """The organisation's memberships, row-locked so owner counts cannot race."""
    return {
        membership.pk: membership
        for membership in Membership.objects.select_for_update()
        .filter(organisation=organisation)
        .order_by("pk")
    }


def _owners_left(memberships: dict[int, Membership], *, without: int) -> int:
    return sum(1 for pk, m in memberships.items() if pk != without and m.role == Membership.Role.OWNER)


def membership_role_set(*, organisation: Organisation, membership_id: int, role: str) -> Membership:
    """Give a member of ``organisation`` another role; demoting the last owner raises
    ``LastOwnerError``."""
    if role not in Membership.Role.values:
        raise DomainError("Choose owner or member.", field="role")
    with transaction.atomic():
        memberships = _memberships_locked(organisation)
        membership = memberships.get(membership_id)
        if membership is None:
            raise NotAMemberError()
        if (
            membership.role == Membership.Role.OWNER
            and role != Membership.Role.OWNER
            and not _owners_left(memberships, without=membership.pk)
        ):
            raise LastOwnerError()
        if membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def membership_remove(*, organisation: Organisation, membership_id: int) -> Membership:
    """Remove a member from ``organisation``; removing the last owner raises ``LastOwnerError``."""
    with transaction.atomic():
        memberships = _memberships_locked(organisation)
        membership = memberships.get(membership_id)
        if membership is None:
            raise NotAMemberError()
        if membership.role == Membership.Role.OWNER and not _owners_left(memberships, without=membership.pk):
            raise LastOwnerError()
        membership.delete()
    return membership
