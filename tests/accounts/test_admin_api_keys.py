"""Staff admin: API keys (secret shown once, digest never, revoke, no deleting used keys)."""

import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.urls import reverse

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from tests.factories import at, make_job
from usage.models import ApiCallCount

CHANGELIST = reverse("admin:accounts_apikey_changelist")
ADD = reverse("admin:accounts_apikey_add")
SECRET_RE = re.compile(r"upk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}")


def change_url(api_key):
    return reverse("admin:accounts_apikey_change", args=[api_key.pk])


def revoke_url(api_key):
    return reverse("admin:accounts_apikey_revoke", args=[api_key.pk])


@pytest.fixture
def unused_key(acme):
    return api_key_create(organisation=acme, name="spare").api_key


@pytest.fixture
def used_key(acme, add_jobs):
    api_key = api_key_create(organisation=acme, name="busy").api_key
    add_jobs([make_job(acme, created_at=at(2025, 1, 5), api_key=api_key)])
    return api_key


def test_changelist_and_forms_render(admin_client, used_key, unused_key):
    api_key_revoke(api_key=unused_key)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert used_key.prefix in response.content.decode()
    assert admin_client.get(ADD).status_code == 200
    assert admin_client.get(change_url(used_key)).status_code == 200
    assert admin_client.get(change_url(unused_key)).status_code == 200


def test_creating_a_key_shows_the_secret_once_and_the_digest_never(admin_client, admin_user, acme):
    response = admin_client.post(ADD, {"organisation": str(acme.pk), "name": "ci runner"})
    assert response.status_code == 200
    content = response.content.decode()
    secrets = SECRET_RE.findall(content)
    assert len(secrets) == 1
    api_key = ApiKey.objects.get(organisation=acme, name="ci runner")
    assert secrets[0].startswith(api_key.prefix + "_")
    assert api_key.created_by == admin_user
    assert api_key.digest not in content
    assert f"Created API key <strong>ci runner</strong> ({api_key.prefix}) for {acme}." in content
    assert "All API keys</a>" in content and "api-key-created" in content
    # The message was shown by this response: nothing of it is left for a later one.
    assert "messages" not in response.cookies or not response.cookies["messages"].value
    assert LogEntry.objects.filter(object_id=str(api_key.pk), action_flag=ADDITION).exists()

    for url in (
        change_url(api_key),
        CHANGELIST,
        reverse("admin:accounts_organisation_change", args=[acme.pk]),
    ):
        later = admin_client.get(url).content.decode()
        assert secrets[0] not in later
        assert not SECRET_RE.search(later)
        assert api_key.digest not in later


def test_a_duplicate_name_is_a_form_error(admin_client, acme, unused_key):
    response = admin_client.post(ADD, {"organisation": str(acme.pk), "name": "spare"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert ApiKey.objects.filter(name="spare").count() == 1


def test_revoke_button_revokes_and_logs(admin_client, unused_key):
    page = admin_client.get(change_url(unused_key)).content.decode()
    assert f'action="{revoke_url(unused_key)}"' in page
    response = admin_client.post(revoke_url(unused_key))
    assert response.status_code == 302 and response.url == change_url(unused_key)
    unused_key.refresh_from_db()
    assert unused_key.is_revoked
    assert (
        LogEntry.objects.get(object_id=str(unused_key.pk), action_flag=CHANGE).get_change_message()
        == "Revoked."
    )


def test_revoke_needs_a_post(admin_client, unused_key):
    assert admin_client.get(revoke_url(unused_key)).status_code == 405
    unused_key.refresh_from_db()
    assert not unused_key.is_revoked


def test_revoke_action_revokes_and_logs(admin_client, used_key, unused_key):
    data = {"action": "revoke_keys", "_selected_action": [str(used_key.pk), str(unused_key.pk)]}
    asked = admin_client.post(CHANGELIST, data)
    assert asked.status_code == 200
    assert b"Revoke these API keys?" in asked.content
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 2
    assert admin_client.post(CHANGELIST, {**data, "confirm": "yes"}).status_code == 302
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 0
    assert LogEntry.objects.filter(change_message="Revoked.").count() == 2


def test_a_revoked_key_is_read_only(admin_client, unused_key):
    api_key_revoke(api_key=unused_key)
    page = admin_client.get(change_url(unused_key))
    assert page.context["has_change_permission"] is False
    assert b"Revoke this key" not in page.content
    response = admin_client.post(change_url(unused_key), {"name": "renamed"})
    assert response.status_code == 403
    unused_key.refresh_from_db()
    assert unused_key.name == "spare"


def test_an_active_key_can_be_renamed(admin_client, unused_key):
    response = admin_client.post(change_url(unused_key), {"name": "renamed"})
    assert response.status_code == 302
    unused_key.refresh_from_db()
    assert unused_key.name == "renamed"


def test_a_key_with_jobs_cannot_be_deleted(admin_client, used_key):
    page = admin_client.get(change_url(used_key))
    assert page.context["has_delete_permission"] is False
    assert admin_client.post(reverse("admin:accounts_apikey_delete", args=[used_key.pk])).status_code == 403
    data = {"action": "delete_selected", "_selected_action": [str(used_key.pk)], "post": "yes"}
    response = admin_client.post(CHANGELIST, data)
    assert b"revoke it instead" in response.content
    assert ApiKey.objects.filter(pk=used_key.pk).exists()


def test_a_key_with_api_calls_cannot_be_deleted(admin_client, acme, unused_key):
    ApiCallCount.objects.create(api_key=unused_key, organisation=acme, month="2025-01-01", calls=3)
    assert admin_client.post(reverse("admin:accounts_apikey_delete", args=[unused_key.pk])).status_code == 403
    assert ApiKey.objects.filter(pk=unused_key.pk).exists()


def test_an_unused_key_can_be_deleted(admin_client, unused_key):
    data = {"action": "delete_selected", "_selected_action": [str(unused_key.pk)], "post": "yes"}
    assert admin_client.post(CHANGELIST, data).status_code == 302
    assert not ApiKey.objects.filter(pk=unused_key.pk).exists()


def test_search_by_prefix_or_whole_key(admin_client, acme):
    created = api_key_create(organisation=acme, name="findme")
    api_key_create(organisation=acme, name="other")
    for term in (created.api_key.prefix, created.plaintext):
        results = admin_client.get(CHANGELIST, {"q": term}).context["cl"].result_list
        assert [key.name for key in results] == ["findme"]


def test_support_revokes_but_cannot_create_or_rename(client, support_staff, unused_key):
    client.force_login(support_staff)
    assert client.get(ADD).status_code == 403
    page = client.get(change_url(unused_key))
    assert page.status_code == 200 and b"Revoke this key" in page.content
    assert client.post(change_url(unused_key), {"name": "renamed"}).status_code == 403
    assert client.post(revoke_url(unused_key)).status_code == 302
    unused_key.refresh_from_db()
    assert unused_key.is_revoked and unused_key.name == "spare"


def test_finance_cannot_revoke(client, finance_staff, unused_key):
    client.force_login(finance_staff)
    page = client.get(change_url(unused_key))
    assert b"Revoke this key" not in page.content
    assert client.post(revoke_url(unused_key)).status_code == 403
    data = {"action": "revoke_keys", "_selected_action": [str(unused_key.pk)], "confirm": "yes"}
    client.post(CHANGELIST, data)
    unused_key.refresh_from_db()
    assert not unused_key.is_revoked
