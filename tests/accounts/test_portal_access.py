"""Who may open which customer page: owner, member, outsider, staff and anonymous, page by page."""

import re

import pytest
from django.urls import reverse

from accounts.models import ApiKey, Membership
from accounts.services import membership_add

ACME_PAGES = [
    ("usage-page", {}),
    ("usage-csv", {}),
    ("api-keys", {}),
]


@pytest.fixture
def persona(request, client, owner, member, outsider, staff, support_staff):
    """Log the client in as the persona named by the test parameter (None: anonymous).

    "support" is staff in the Support role (views every organisation); "staff" has no role, so
    the customer pages treat them like any other user who is not a member.
    """
    users = {
        "owner": owner,
        "member": member,
        "outsider": outsider,
        "support": support_staff,
        "staff": staff,
        "anonymous": None,
    }
    user = users[request.param]
    if user is not None:
        client.force_login(user)
    return request.param


def _url(name, org_id="org_acme", **kwargs):
    return reverse(name, kwargs={"org_id": org_id, **kwargs})


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("owner", 200),
        ("member", 200),
        ("support", 200),
        ("staff", 404),
        ("outsider", 404),
        ("anonymous", 302),
    ],
    indirect=["persona"],
)
@pytest.mark.parametrize("page", [name for name, _ in ACME_PAGES])
def test_reading_pages_of_acme(client, persona, expected, page):
    response = client.get(_url(page))

    assert response.status_code == expected
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("owner", 200),
        ("member", 403),
        ("support", 403),
        ("staff", 404),
        ("outsider", 404),
        ("anonymous", 302),
    ],
    indirect=["persona"],
)
def test_opening_the_revoke_confirmation(client, persona, expected, acme_key):
    response = client.get(_url("api-key-revoke", key_id=acme_key.api_key.pk))

    assert response.status_code == expected


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("owner", 302),
        ("member", 403),
        ("support", 403),
        ("staff", 404),
        ("outsider", 404),
        ("anonymous", 302),
    ],
    indirect=["persona"],
)
def test_revoking_a_key(client, persona, expected, acme_key):
    response = client.post(_url("api-key-revoke", key_id=acme_key.api_key.pk))

    assert response.status_code == expected
    acme_key.api_key.refresh_from_db()
    assert acme_key.api_key.is_revoked is (persona == "owner")


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("owner", 201),
        ("member", 403),
        ("support", 403),
        ("staff", 404),
        ("outsider", 404),
        ("anonymous", 302),
    ],
    indirect=["persona"],
)
def test_creating_a_key(client, persona, expected, acme):
    response = client.post(_url("api-keys"), {"name": "new"})

    assert response.status_code == expected
    assert ApiKey.objects.filter(organisation=acme, name="new").exists() is (persona == "owner")


def test_staff_who_also_own_the_organisation_manage_its_keys(client, staff, acme):
    membership_add(organisation=acme, user=staff, role=Membership.Role.OWNER)
    client.force_login(staff)

    response = client.post(_url("api-keys"), {"name": "by-staff-owner"})

    assert response.status_code == 201
    assert ApiKey.objects.filter(organisation=acme, name="by-staff-owner").exists()


def test_staff_see_a_read_only_banner_and_no_key_controls(client, support_staff, acme_key):
    client.force_login(support_staff)

    usage = client.get(_url("usage-page")).content.decode()
    keys = client.get(_url("api-keys")).content.decode()

    assert "as staff: read-only" in usage
    assert "as staff: read-only" in keys
    assert "Create a key" not in keys
    assert reverse("api-key-revoke", kwargs={"org_id": "org_acme", "key_id": acme_key.api_key.pk}) not in keys


def _without_csrf(content: bytes) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", content)


def test_an_unknown_organisation_looks_exactly_like_someone_elses(client, outsider, acme):
    client.force_login(outsider)

    someone_elses = client.get(_url("usage-page", "org_acme"))
    unknown = client.get(_url("usage-page", "org_doesnotexist"))

    assert someone_elses.status_code == unknown.status_code == 404
    assert _without_csrf(someone_elses.content) == _without_csrf(unknown.content)
    assert b"Acme" not in someone_elses.content


def test_a_key_of_another_organisation_is_not_found_through_ones_own(client, owner, outsider, globex):
    from accounts.services import api_key_create

    globex_key = api_key_create(organisation=globex, name="theirs").api_key
    client.force_login(owner)

    assert client.get(_url("api-key-revoke", key_id=globex_key.pk)).status_code == 404
    assert client.post(_url("api-key-revoke", key_id=globex_key.pk)).status_code == 404
    globex_key.refresh_from_db()
    assert not globex_key.is_revoked


def test_inactive_users_are_logged_out_of_every_page(client, owner):
    client.force_login(owner)
    owner.is_active = False
    owner.save()

    assert client.get(_url("usage-page")).status_code == 302


@pytest.mark.parametrize("page", ["usage-page", "api-keys"])
def test_only_get_and_post_where_they_make_sense(client, owner, page):
    client.force_login(owner)

    assert client.put(_url(page)).status_code == 405
    assert client.delete(_url(page)).status_code == 405


def test_usage_pages_refuse_post(client, owner):
    client.force_login(owner)

    assert client.post(_url("usage-page")).status_code == 405
    assert client.post(_url("usage-csv")).status_code == 405


def test_key_writes_need_the_csrf_token(owner, acme_key):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    assert client.post(_url("api-keys"), {"name": "forged"}).status_code == 403
    assert client.post(_url("api-key-revoke", key_id=acme_key.api_key.pk)).status_code == 403
    acme_key.api_key.refresh_from_db()
    assert not acme_key.api_key.is_revoked
