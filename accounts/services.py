"""Writes of the accounts domain: organisations, memberships, invitations, API keys and service
keys."""

import datetime as dt
import secrets
import string
from collections.abc import Callable, Collection
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.errors import DomainError
from portal.events import DomainEvent, event_publish

from . import keys
from .models import ApiKey, Invitation, Membership, Organisation, ServiceKey, User

_ORG_ID_ALPHABET = string.ascii_lowercase + string.digits
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class DuplicateKeyName(DomainError):
    """Another key of the organisation already has this name (names key ``/usage``'s ``api_keys``)."""

    def __init__(self, name: str) -> None:
        super().__init__("A key with this name already exists in this organisation.", field="name")
        self.name = name


class InvalidKeyName(DomainError):
    """A key name that is empty or too long."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="name")


class DuplicateServiceKeyName(DomainError):
    """Another service key already has this name (names are unique among service keys)."""

    def __init__(self, name: str) -> None:
        super().__init__("A service key with this name already exists.", field="name")
        self.name = name


def usage_version_bump(*, organisation_ids: Collection[int] | None) -> None:
    """Invalidate cached usage of these organisations (None: all of them); see the model's
    ``usage_version``. Call it in the transaction of every change that alters usage reads."""
    organisations = Organisation.objects.all()
    if organisation_ids is not None:
        organisations = organisations.filter(pk__in=organisation_ids)
    organisations.update(usage_version=F("usage_version") + 1)


def _signing_keys() -> list[str]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def organisation_create(
    *, name: str, org_id: str | None = None, plan=None, free_job_allowance: int = 0
) -> Organisation:
    """Create an organisation; a random ``org_…`` id is chosen when none is given."""
    organisation = Organisation(
        name=name,
        org_id=org_id or "org_" + "".join(secrets.choice(_ORG_ID_ALPHABET) for _ in range(12)),
        plan=plan,
        free_job_allowance=free_job_allowance,
    )
    organisation.full_clean()
    organisation.save()
    return organisation


def organisation_set_active(*, organisation: Organisation, is_active: bool) -> bool:
    """Activate or deactivate an organisation; returns whether its state changed.

    An inactive organisation keeps its data, members and keys, but its keys are refused (403).
    """
    updated = Organisation.objects.filter(pk=organisation.pk).exclude(is_active=is_active)
    changed = bool(updated.update(is_active=is_active))
    organisation.is_active = is_active
    return changed


def membership_add(
    *, organisation: Organisation, user: User, role: str = Membership.Role.MEMBER
) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        organisation=organisation, user=user, defaults={"role": role}
    )
    return membership


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    plaintext: str


def api_key_create(
    *,
    organisation: Organisation,
    name: str,
    created_by: User | None = None,
    generated: keys.GeneratedKey | None = None,
) -> CreatedKey:
    """Create a key and return it with its secret, which is never available again.

    ``generated`` is for the demo data only; normally a fresh random key is made.
    """
    generated = generated or keys.generate_key()
    api_key = ApiKey(
        organisation=organisation,
        name=name.strip(),
        lookup=generated.lookup,
        digest=keys.key_digest(generated.plaintext, signing_key=settings.SECRET_KEY),
        created_by=created_by,
    )
    _key_name_check(api_key)
    try:
        with transaction.atomic():
            api_key.save()
            event_publish(_api_key_event("api_key.created", api_key))
    except IntegrityError:  # a concurrent creation under the same name
        raise DuplicateKeyName(api_key.name) from None
    return CreatedKey(api_key=api_key, plaintext=generated.plaintext)


def api_key_rename(*, api_key: ApiKey, name: str) -> ApiKey:
    """Rename a key; its name is the key of ``/usage``'s ``api_keys``, so cached usage is renewed."""
    api_key.name = name.strip()
    _key_name_check(api_key)
    try:
        with transaction.atomic():
            ApiKey.objects.filter(pk=api_key.pk).update(name=api_key.name)
            usage_version_bump(organisation_ids=[api_key.organisation_id])
    except IntegrityError:
        raise DuplicateKeyName(api_key.name) from None
    return api_key


def _key_name_check(api_key: ApiKey) -> None:
    """Raise ``DuplicateKeyName`` or ``InvalidKeyName`` for a name the key cannot take."""
    try:
        api_key.full_clean(exclude=["lookup", "digest", "organisation", "created_by"])
    except ValidationError as error:
        codes = {item.code for items in error.error_dict.values() for item in items}
        if codes & {"unique", "unique_together"}:
            raise DuplicateKeyName(api_key.name) from None
        raise InvalidKeyName(" ".join(error.messages)) from None
    if ApiKey.objects.filter(organisation_id=api_key.organisation_id, name=api_key.name).exclude(
        pk=api_key.pk
    ).exists():
        raise DuplicateKeyName(api_key.name)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key from the next request on; revoking twice keeps the first time (and publishes
    ``api_key.revoked`` once)."""
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        api_key.refresh_from_db(fields=["revoked_at"])
        if revoked:
            event_publish(_api_key_event("api_key.revoked", api_key))
    return api_key


def _api_key_event(event_type: str, api_key: ApiKey) -> DomainEvent:
    """The event of a key's creation or revocation: at most once per key and type."""
    return DomainEvent(
        organisation_id=api_key.organisation_id,
        type=event_type,
        key=f"{event_type}:{api_key.pk}",
        data={
            "org_id": api_key.organisation.org_id,
            "key_name": api_key.name,
            "key_prefix": api_key.prefix,
            "created_at": api_key.created_at.isoformat(),
            "revoked_at": api_key.revoked_at.isoformat() if api_key.revoked_at else None,
        },
    )


def api_key_verify(plaintext: str) -> ApiKey | None:
    """The unrevoked key matching ``plaintext`` (with its organisation), or None.

    One indexed lookup and one HMAC; a match under a ``SECRET_KEY_FALLBACKS`` entry is re-hashed
    with the current ``SECRET_KEY`` so fallbacks can be retired.
    """
    lookup = keys.parse_lookup(plaintext)
    if lookup is None:
        return None
    # order_by(): the model's default ordering would make .first() sort through a join.
    api_key = ApiKey.objects.select_related("organisation").filter(lookup=lookup).order_by().first()
    if api_key is None or not keys.key_matches(plaintext, api_key.digest, signing_keys=_signing_keys()):
        return None
    if api_key.revoked_at is not None:
        return None
    current = keys.key_digest(plaintext, signing_key=settings.SECRET_KEY)
    if api_key.digest != current:
        ApiKey.objects.filter(pk=api_key.pk).update(digest=current)
    return api_key


def api_key_touch(*, api_key: ApiKey, now: dt.datetime | None = None) -> None:
    """Record use, at most once per ``LAST_USED_RESOLUTION`` (a conditional update)."""
    now = now or timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk).exclude(last_used_at__gt=now - LAST_USED_RESOLUTION).update(
            last_used_at=now
        )
    api_key.last_used_at = now


@dataclass(frozen=True)
class CreatedServiceKey:
    service_key: ServiceKey
    plaintext: str


def service_key_create(
    *, name: str, organisations: Collection[Organisation] = (), created_by: User | None = None
) -> CreatedServiceKey:
    """Create a service key limited to ``organisations`` (none: every organisation) and return it
    with its secret, which is never available again. Raises ``InvalidKeyName`` or
    ``DuplicateServiceKeyName``."""
    generated = keys.generate_key(prefix=keys.SERVICE_KEY_PREFIX)
    service_key = ServiceKey(
        name=name.strip(),
        lookup=generated.lookup,
        digest=keys.key_digest(generated.plaintext, signing_key=settings.SECRET_KEY),
        created_by=created_by,
    )
    try:
        service_key.full_clean(exclude=["lookup", "digest", "created_by"])
    except ValidationError as error:
        codes = {item.code for items in error.error_dict.values() for item in items}
        if "unique" in codes:
            raise DuplicateServiceKeyName(service_key.name) from None
        raise InvalidKeyName(" ".join(error.messages)) from None
    try:
        with transaction.atomic():
            service_key.save()
            service_key.organisations.set(organisations)
    except IntegrityError:  # a concurrent creation under the same name
        raise DuplicateServiceKeyName(service_key.name) from None
    return CreatedServiceKey(service_key=service_key, plaintext=generated.plaintext)


def service_key_verify(plaintext: str) -> ServiceKey | None:
    """The unrevoked service key matching ``plaintext``, or None (a customer key included).

    One indexed lookup and one HMAC; a match under a ``SECRET_KEY_FALLBACKS`` entry is re-hashed
    with the current ``SECRET_KEY``.
    """
    lookup = keys.parse_lookup(plaintext, prefix=keys.SERVICE_KEY_PREFIX)
    if lookup is None:
        return None
    service_key = ServiceKey.objects.filter(lookup=lookup).order_by().first()
    if service_key is None or not keys.key_matches(
        plaintext, service_key.digest, signing_keys=_signing_keys()
    ):
        return None
    if service_key.revoked_at is not None:
        return None
    current = keys.key_digest(plaintext, signing_key=settings.SECRET_KEY)
    if service_key.digest != current:
        ServiceKey.objects.filter(pk=service_key.pk).update(digest=current)
    return service_key


def service_key_scope(*, service_key: ServiceKey) -> frozenset[int] | None:
    """The primary keys of the organisations the key may write, or None for every organisation."""
    scope = frozenset(service_key.organisations.values_list("pk", flat=True))
    return scope or None


def service_key_revoke(*, service_key: ServiceKey) -> ServiceKey:
    """Revoke a service key from the next request on; revoking twice keeps the first time."""
    ServiceKey.objects.filter(pk=service_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    service_key.refresh_from_db(fields=["revoked_at"])
    return service_key


def service_key_touch(*, service_key: ServiceKey, now: dt.datetime | None = None) -> None:
    """Record use, at most once per ``LAST_USED_RESOLUTION`` (a conditional update)."""
    now = now or timezone.now()
    if service_key.last_used_at and now - service_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ServiceKey.objects.filter(pk=service_key.pk).exclude(
        last_used_at__gt=now - LAST_USED_RESOLUTION
    ).update(last_used_at=now)
    service_key.last_used_at = now


def service_key_scope_set(*, service_key: ServiceKey, organisations: Collection[Organisation]) -> ServiceKey:
    """Limit the key to ``organisations`` (none: every organisation), from its next request on."""
    service_key.organisations.set(organisations)
    return service_key

# --- Team: invitations, roles and removals -------------------------------------------------------

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
                subject=f"You're invited to {organisation.name} on the Usage Portal",
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
            Invitation.objects.select_for_update()
            .filter(organisation=organisation, pk=invitation_id)
            .first()
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
