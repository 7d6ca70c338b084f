"""Writes of the accounts domain: organisations, memberships, API keys and service keys. (Team
management, invitations included, is ``accounts.team``.)"""

import datetime as dt
import secrets
import string
from collections.abc import Collection
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.errors import DomainError
from portal.events import DomainEvent, event_publish

from . import keys
from .models import ApiKey, Membership, Organisation, ServiceKey, User

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
    if (
        ApiKey.objects.filter(organisation_id=api_key.organisation_id, name=api_key.name)
        .exclude(pk=api_key.pk)
        .exists()
    ):
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
    ServiceKey.objects.filter(pk=service_key.pk).exclude(last_used_at__gt=now - LAST_USED_RESOLUTION).update(
        last_used_at=now
    )
    service_key.last_used_at = now


def service_key_scope_set(*, service_key: ServiceKey, organisations: Collection[Organisation]) -> ServiceKey:
    """Limit the key to ``organisations`` (none: every organisation), from its next request on."""
    service_key.organisations.set(organisations)
    return service_key
