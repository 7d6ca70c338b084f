"""The API keys page: the list, creating a key (secret shown once) and revoking one."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, api_key_touch, api_key_verify

KEYS_URL = reverse("api-keys", kwargs={"org_id": "org_acme"})


def _revoke_url(api_key):
    return reverse("api-key-revoke", kwargs={"org_id": "org_acme", "key_id": api_key.pk})


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


def test_the_list_shows_name_prefix_created_last_used_and_status(client, member, acme):
    with time_machine.travel(dt.datetime(2025, 3, 4, 10, 0, tzinfo=dt.UTC), tick=False):
        used = api_key_create(organisation=acme, name="production").api_key
        unused = api_key_create(organisation=acme, name="staging").api_key
        revoked = api_key_revoke(api_key=api_key_create(organisation=acme, name="old laptop").api_key)
    with time_machine.travel(dt.datetime(2025, 3, 6, 10, 0, tzinfo=dt.UTC), tick=False):
        api_key_touch(api_key=used)
        client.force_login(member)
        page = client.get(KEYS_URL).content.decode()

    for api_key in (used, unused, revoked):
        assert api_key.name in page
        assert api_key.prefix in page
    assert "4 Mar 2025" in page
    assert "Never" in page
    assert 'datetime="2025-03-06T10:00:00+00:00"' in page
    assert page.count(">Active<") == 2
    assert page.count(">Revoked<") == 1
    # Active keys come first, each group by name.
    assert page.index("production") < page.index("staging") < page.index("old laptop")


def test_members_see_the_list_read_only(client, member, acme_key):
    client.force_login(member)

    page = client.get(KEYS_URL).content.decode()

    assert acme_key.api_key.name in page
    assert "Only an owner can create or revoke them" in page
    assert 'name="name"' not in page
    assert _revoke_url(acme_key.api_key) not in page


def test_owners_see_the_create_form_and_a_revoke_link_per_active_key(as_owner, acme, acme_key):
    revoked = api_key_revoke(api_key=api_key_create(organisation=acme, name="gone").api_key)

    page = as_owner.get(KEYS_URL).content.decode()

    assert 'name="name"' in page
    assert _revoke_url(acme_key.api_key) in page
    assert _revoke_url(revoked) not in page


def test_an_organisation_without_keys_says_so(as_owner, acme):
    assert "No API keys yet" in as_owner.get(KEYS_URL).content.decode()


def test_creating_a_key_shows_its_secret_exactly_once(as_owner, owner, acme, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    response = as_owner.post(KEYS_URL, {"name": "  ci pipeline  "})

    # The creating POST answers the page with the secret: nothing waits in the session.
    assert response.status_code == 201
    api_key = ApiKey.objects.get(organisation=acme)
    assert api_key.name == "ci pipeline"
    assert api_key.created_by == owner
    secret = response.context["new_key"]["plaintext"]
    assert secret in response.content.decode()
    assert api_key_verify(secret) == api_key
    assert "no-store" in response["Cache-Control"]
    assert 'id="copy-key"' in response.content.decode()
    assert response.context["form"]["name"].value() in (None, "")
    assert not any(secret in str(value) for value in as_owner.session.values())
    assert secret not in caplog.text

    again = as_owner.get(KEYS_URL)
    assert again.context["new_key"] is None
    assert secret not in again.content.decode()


def test_the_secret_is_never_shown_on_another_page(as_owner, owner, globex):
    from accounts.models import Membership
    from accounts.services import membership_add

    membership_add(organisation=globex, user=owner, role=Membership.Role.OWNER)
    created = as_owner.post(KEYS_URL, {"name": "acme key"})

    globex_page = as_owner.get(reverse("api-keys", kwargs={"org_id": "org_globex"}))
    acme_page = as_owner.get(KEYS_URL)

    assert created.context["new_key"]["name"] == "acme key"
    assert globex_page.context["new_key"] is None
    assert acme_page.context["new_key"] is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("x" * 101, "at most 100 characters"),
        ("some api key", "already exists"),
    ],
)
def test_an_invalid_name_is_explained_and_creates_nothing(as_owner, acme, acme_key, name, message):
    response = as_owner.post(KEYS_URL, {"name": name})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert ApiKey.objects.filter(organisation=acme).count() == 1
    assert response.context["new_key"] is None


def test_the_same_name_may_be_used_by_another_organisation(as_owner, globex):
    api_key_create(organisation=globex, name="production")

    assert as_owner.post(KEYS_URL, {"name": "production"}).status_code == 201


def test_revoking_asks_for_confirmation_first(as_owner, acme_key):
    page = as_owner.get(_revoke_url(acme_key.api_key)).content.decode()

    assert "Revoke “some api key”?" in page
    assert 'method="post"' in page
    assert "csrfmiddlewaretoken" in page
    acme_key.api_key.refresh_from_db()
    assert not acme_key.api_key.is_revoked


def test_revoking_takes_effect_and_says_so(as_owner, acme_key):
    response = as_owner.post(_revoke_url(acme_key.api_key), follow=True)

    assert response.redirect_chain == [(KEYS_URL, 302)]
    assert "is revoked" in response.content.decode()
    assert api_key_verify(acme_key.plaintext) is None


def test_revoking_twice_keeps_the_first_time(as_owner, acme_key):
    with time_machine.travel(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), tick=False):
        as_owner.post(_revoke_url(acme_key.api_key))
    with time_machine.travel(dt.datetime(2025, 2, 1, tzinfo=dt.UTC), tick=False):
        page = as_owner.get(_revoke_url(acme_key.api_key)).content.decode()
        as_owner.post(_revoke_url(acme_key.api_key))

    acme_key.api_key.refresh_from_db()
    assert acme_key.api_key.revoked_at == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert "already revoked" in page


def test_an_unknown_key_is_not_found(as_owner, acme):
    response = as_owner.get(reverse("api-key-revoke", kwargs={"org_id": "org_acme", "key_id": 999999}))

    assert response.status_code == 404


def test_a_name_taken_by_a_concurrent_request_is_a_duplicate_name(acme, monkeypatch):
    from accounts import services

    services.api_key_create(organisation=acme, name="production")
    # The other request checked the name before this one inserted it: the constraint decides.
    monkeypatch.setattr(services, "_key_name_check", lambda api_key: None)

    with pytest.raises(services.DuplicateKeyName):
        services.api_key_create(organisation=acme, name="production")


def test_a_duplicate_name_from_the_service_is_a_form_error(as_owner, acme, monkeypatch):
    from accounts import services, views

    def racing_create(**kwargs):
        raise services.DuplicateKeyName(kwargs["name"])

    monkeypatch.setattr(views, "api_key_create", racing_create)

    response = as_owner.post(KEYS_URL, {"name": "production"})

    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_other_refusals_of_the_service_are_shown_as_they_are(as_owner, acme, monkeypatch):
    from accounts import services, views

    def refusing_create(**kwargs):
        raise services.InvalidKeyName("Names cannot contain control characters.")

    monkeypatch.setattr(views, "api_key_create", refusing_create)

    response = as_owner.post(KEYS_URL, {"name": "bad"})

    assert response.status_code == 400
    assert "Names cannot contain control characters." in response.content.decode()
