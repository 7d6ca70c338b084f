"""Service keys: their own prefix, stored hashed, scoped, revocable; the createservicekey command
and the staff admin."""

import datetime as dt
import io
import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts import keys
from accounts.models import ServiceKey
from accounts.services import (
    DuplicateServiceKeyName,
    InvalidKeyName,
    api_key_verify,
    service_key_create,
    service_key_revoke,
    service_key_scope,
    service_key_scope_set,
    service_key_touch,
    service_key_verify,
)

SECRET_RE = re.compile(r"upsk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}")
CHANGELIST = reverse("admin:accounts_servicekey_changelist")
ADD = reverse("admin:accounts_servicekey_add")


def test_a_service_key_has_its_own_prefix_and_never_parses_as_the_other_kind():
    service = keys.generate_key(prefix=keys.SERVICE_KEY_PREFIX)
    customer = keys.generate_key()

    assert SECRET_RE.fullmatch(service.plaintext)
    assert service.prefix == f"upsk_{service.lookup}"
    assert keys.parse_lookup(service.plaintext, prefix=keys.SERVICE_KEY_PREFIX) == service.lookup
    assert keys.parse_lookup(service.plaintext) is None
    assert keys.parse_lookup(customer.plaintext, prefix=keys.SERVICE_KEY_PREFIX) is None
    with pytest.raises(ValueError, match="unknown key prefix"):
        keys.generate_key(prefix="xx_")


def test_create_stores_only_a_digest_and_verify_finds_the_key(db):
    created = service_key_create(name=" platform ")

    stored = ServiceKey.objects.get()
    assert stored.name == "platform"
    assert created.plaintext not in (stored.digest, stored.lookup)
    assert service_key_verify(created.plaintext) == stored
    tampered = created.plaintext[:-1] + ("B" if created.plaintext.endswith("A") else "A")
    assert service_key_verify(tampered) is None
    assert api_key_verify(created.plaintext) is None
    assert service_key_verify("upsk_nothing") is None


def test_names_are_unique_and_not_empty(db):
    service_key_create(name="platform")
    with pytest.raises(DuplicateServiceKeyName):
        service_key_create(name="platform")
    with pytest.raises(InvalidKeyName):
        service_key_create(name="  ")


def test_scope_is_the_organisations_given_or_none_for_all(acme, globex):
    assert service_key_scope(service_key=service_key_create(name="all").service_key) is None
    scoped = service_key_create(name="acme", organisations=[acme]).service_key
    assert service_key_scope(service_key=scoped) == {acme.pk}


def test_revoke_takes_effect_at_once_and_keeps_the_first_time(db):
    created = service_key_create(name="platform")
    service_key_revoke(service_key=created.service_key)
    first = created.service_key.revoked_at
    service_key_revoke(service_key=created.service_key)

    assert created.service_key.revoked_at == first
    assert service_key_verify(created.plaintext) is None


def test_touch_records_use_at_most_once_a_minute(db):
    service_key = service_key_create(name="platform").service_key
    moment = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    service_key_touch(service_key=service_key, now=moment)
    service_key_touch(service_key=service_key, now=moment + dt.timedelta(seconds=30))

    service_key.refresh_from_db()
    assert service_key.last_used_at == moment
    service_key_touch(service_key=service_key, now=moment + dt.timedelta(minutes=2))
    service_key.refresh_from_db()
    assert service_key.last_used_at == moment + dt.timedelta(minutes=2)


def call(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createservicekey_prints_the_secret_alone_on_the_last_line(acme, globex):
    out, err = call("createservicekey", "platform", "--org", "org_acme", "--org", "org_globex")

    secret = out.strip().splitlines()[-1]
    assert out.strip() == secret and SECRET_RE.fullmatch(secret)
    service_key = service_key_verify(secret)
    assert service_key_scope(service_key=service_key) == {acme.pk, globex.pk}
    assert "shown only once" in err
    with pytest.raises(CommandError, match="already exists"):
        call("createservicekey", "platform")
    with pytest.raises(CommandError, match="unknown organisation.*org_nope"):
        call("createservicekey", "other", "--org", "org_acme", "--org", "org_nope")
    assert ServiceKey.objects.count() == 1


def test_createservicekey_without_org_writes_every_organisation(db):
    out, _ = call("createservicekey", "platform")

    assert service_key_scope(service_key=service_key_verify(out.strip())) is None


def test_admin_lists_keys_with_scope_last_use_and_revocation(admin_client, acme):
    scoped = service_key_create(name="acme only", organisations=[acme]).service_key
    revoked = service_key_create(name="old").service_key
    service_key_revoke(service_key=revoked)

    content = admin_client.get(CHANGELIST).content.decode()

    assert "org_acme" in content and "all organisations" in content
    assert scoped.prefix in content and revoked.prefix in content
    assert admin_client.get(ADD).status_code == 200
    assert admin_client.get(reverse("admin:accounts_servicekey_change", args=[scoped.pk])).status_code == 200


def test_admin_creation_shows_the_secret_once_and_the_digest_never(admin_client, admin_user, acme):
    response = admin_client.post(ADD, {"name": "platform", "organisations": [str(acme.pk)]})

    assert response.status_code == 200
    content = response.content.decode()
    [secret] = SECRET_RE.findall(content)
    service_key = ServiceKey.objects.get(name="platform")
    assert service_key_verify(secret) == service_key
    assert service_key.digest not in content
    assert f"Created service key <strong>platform</strong> ({service_key.prefix})" in content
    assert "All service keys</a>" in content and "service-key-created" in content
    assert service_key.created_by == admin_user
    assert service_key_scope(service_key=service_key) == {acme.pk}
    assert not SECRET_RE.findall(admin_client.get(CHANGELIST).content.decode())


def test_admin_revokes_by_button_and_by_action(admin_client, acme):
    one = service_key_create(name="one").service_key
    two = service_key_create(name="two").service_key

    response = admin_client.post(reverse("admin:accounts_servicekey_revoke", args=[one.pk]))
    assert response.status_code == 302
    admin_client.post(CHANGELIST, {"action": "revoke_keys", "_selected_action": [str(two.pk)]})

    assert not ServiceKey.objects.filter(revoked_at__isnull=True).exists()
    assert LogEntry.objects.filter(action_flag=CHANGE, change_message="Revoked.").count() == 2


def _ingest_get(client, secret: str, org_id: str) -> int:
    """The status of a read of a job that does not exist: 404 within the key's scope, 401/403
    when the key is refused, 404 too (an unknown job) outside it."""
    return client.get(
        f"/api/v1/ingest/jobs/{org_id}/no-such-job", headers={"Authorization": f"Bearer {secret}"}
    ).status_code


def _ingest_post(client, secret: str, org_id: str) -> dict:
    item = {
        "org_id": org_id,
        "external_id": "lookup-1",
        "created_at": "2025-01-03T10:00:00Z",
        "language": "Hindi",
        "audio_duration_seconds": 60,
        "status": "completed",
    }
    response = client.post(
        "/api/v1/ingest/jobs",
        {"jobs": [item]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    return {"status": response.status_code, **(response.json() if response.status_code == 200 else {})}


def test_a_scope_change_and_a_revocation_hold_from_the_next_request(client, acme, globex):
    created = service_key_create(name="platform", organisations=[acme])
    secret = created.plaintext

    assert _ingest_post(client, secret, "org_acme")["created"] == 1
    assert _ingest_post(client, secret, "org_globex")["rejected"] == 1  # outside the scope
    service_key_scope_set(service_key=created.service_key, organisations=[acme, globex])
    assert _ingest_post(client, secret, "org_globex")["created"] == 1
    service_key_scope_set(service_key=created.service_key, organisations=[])  # every organisation
    assert _ingest_post(client, secret, "org_globex")["unchanged"] == 1
    service_key_revoke(service_key=created.service_key)
    assert _ingest_post(client, secret, "org_acme")["status"] == 401


def test_a_service_key_signed_under_a_fallback_secret_works_and_is_rehashed(client, acme, settings):
    created = service_key_create(name="old secret")
    revoked = service_key_create(name="old and revoked")
    service_key_revoke(service_key=revoked.service_key)
    old_digest = created.service_key.digest
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-that-is-long-enough-for-the-test-0123456789"

    assert _ingest_get(client, created.plaintext, "org_acme") == 404
    assert ServiceKey.objects.get(pk=created.service_key.pk).digest != old_digest
    assert _ingest_get(client, created.plaintext, "org_acme") == 404  # under the new secret
    assert _ingest_get(client, revoked.plaintext, "org_acme") == 401
    settings.SECRET_KEY_FALLBACKS = []
    assert _ingest_get(client, revoked.plaintext, "org_acme") == 401
    assert _ingest_get(client, created.plaintext[:-1] + "x", "org_acme") == 401


def test_on_postgresql_the_hot_ingestion_statements_are_prepared(client, acme):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    secret = service_key_create(name="platform").plaintext
    assert _ingest_post(client, secret, "org_acme")["created"] == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = "\n".join(statement for (statement,) in cursor.fetchall())

    for table in ("accounts_servicekey", "accounts_organisation", "usage_job", "usage_stalemonth"):
        assert f'"{table}"' in prepared or f"{table} " in prepared, table
    assert "pg_advisory_xact_lock" in prepared
