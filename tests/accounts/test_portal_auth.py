"""Logging in and out, changing and resetting a password, the dashboard and the org switcher."""

import re

import pytest
from django.urls import reverse

from accounts.models import Membership, User
from accounts.services import membership_add, organisation_create

USAGE_ACME = reverse("usage-page", kwargs={"org_id": "org_acme"})


def test_logging_in_lands_a_single_organisation_member_on_its_usage_page(client, owner):
    response = client.post(
        reverse("login"), {"username": "olivia", "password": "owner-pass-123"}, follow=True
    )

    assert response.redirect_chain == [(reverse("dashboard"), 302), (USAGE_ACME, 302)]
    assert response.status_code == 200


def test_logging_in_goes_back_to_the_page_asked_for(client, owner):
    keys = reverse("api-keys", kwargs={"org_id": "org_acme"})
    login_page = client.get(keys, follow=True)
    assert login_page.redirect_chain[-1][0] == f"{reverse('login')}?next={keys}"

    response = client.post(
        reverse("login"), {"username": "olivia", "password": "owner-pass-123", "next": keys}
    )

    assert response["Location"] == keys


def test_a_wrong_password_is_refused_politely(client, owner):
    response = client.post(reverse("login"), {"username": "olivia", "password": "nope"})

    assert response.status_code == 200
    assert "didn't match" in response.content.decode()


def test_the_login_page_offers_a_password_reset(client, db):
    assert reverse("password_reset") in client.get(reverse("login")).content.decode()


def test_logging_out_needs_a_post_and_ends_the_session(client, owner):
    client.force_login(owner)

    response = client.post(reverse("logout"))

    assert response["Location"] == reverse("login")
    assert client.get(USAGE_ACME).status_code == 302


def test_changing_the_password(client, owner):
    client.force_login(owner)
    assert client.get(reverse("password_change")).status_code == 200

    response = client.post(
        reverse("password_change"),
        {
            "old_password": "owner-pass-123",
            "new_password1": "a-new-long-secret-9",
            "new_password2": "a-new-long-secret-9",
        },
        follow=True,
    )

    assert response.redirect_chain == [(reverse("password_change_done"), 302)]
    assert "Password changed" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password("a-new-long-secret-9")


def test_changing_the_password_explains_mistakes(client, owner):
    client.force_login(owner)

    response = client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": "short", "new_password2": "other"},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in page
    assert "field-error" in page


def test_changing_the_password_needs_login(client, db):
    assert client.get(reverse("password_change"))["Location"].startswith(reverse("login"))


def test_resetting_a_forgotten_password_by_email(client, owner, mailoutbox):
    response = client.post(reverse("password_reset"), {"email": "olivia@acme.test"}, follow=True)

    assert response.redirect_chain == [(reverse("password_reset_done"), 302)]
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["olivia@acme.test"]
    assert message.subject == "Reset your Usage Portal password"
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", message.body).group(1)

    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "fresh-long-secret-7", "new_password2": "fresh-long-secret-7"}, follow=True
    )

    assert done.redirect_chain == [(reverse("password_reset_complete"), 302)]
    owner.refresh_from_db()
    assert owner.check_password("fresh-long-secret-7")
    assert "This link has expired" in client.get(link, follow=True).content.decode()


def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client, db, mailoutbox):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.test"}, follow=True)

    assert response.redirect_chain == [(reverse("password_reset_done"), 302)]
    assert mailoutbox == []


def test_the_dashboard_lists_several_organisations_to_choose_from(client, owner, globex):
    membership_add(organisation=globex, user=owner, role=Membership.Role.MEMBER)
    client.force_login(owner)

    response = client.get(reverse("dashboard"))

    page = response.content.decode()
    assert response.status_code == 200
    assert USAGE_ACME in page
    assert reverse("usage-page", kwargs={"org_id": "org_globex"}) in page
    assert page.index("Acme") < page.index("Globex")


def test_the_dashboard_is_friendly_to_a_user_in_no_organisation(client, db):
    client.force_login(User.objects.create_user("lonely", "l@x.test", "pw-lonely-123"))

    response = client.get(reverse("dashboard"))

    assert response.status_code == 200
    assert "not in an organisation yet" in response.content.decode()


def test_staff_pick_any_organisation_from_the_dashboard(client, support_staff, acme, globex):
    client.force_login(support_staff)

    page = client.get(reverse("dashboard")).content.decode()

    assert USAGE_ACME in page
    assert reverse("usage-page", kwargs={"org_id": "org_globex"}) in page


def test_staff_search_organisations_by_name_or_id(client, support_staff, acme, globex):
    organisation_create(name="Initech", org_id="org_initech")
    client.force_login(support_staff)

    by_name = client.get(reverse("dashboard"), {"q": "glob"}).content.decode()
    by_id = client.get(reverse("dashboard"), {"q": "org_ini"}).content.decode()
    nothing = client.get(reverse("dashboard"), {"q": "zzz"}).content.decode()

    assert "org_globex" in by_name and "org_acme" not in by_name
    assert "org_initech" in by_id and "org_globex" not in by_id
    assert "No organisation matches" in nothing


def test_members_of_several_organisations_can_switch_from_the_header(client, owner, globex):
    membership_add(organisation=globex, user=owner, role=Membership.Role.MEMBER)
    client.force_login(owner)

    page = client.get(USAGE_ACME).content.decode()

    switcher = page[page.index('class="menu org-menu"') :]
    switcher = switcher[: switcher.index("</details>")]
    assert reverse("usage-page", kwargs={"org_id": "org_globex"}) in switcher
    assert 'aria-current="true"><span>Acme' in switcher


def test_members_of_one_organisation_see_its_name_and_no_switcher(client, member):
    client.force_login(member)

    page = client.get(USAGE_ACME).content.decode()

    assert "org-menu" not in page
    assert '<span class="org-name">Acme</span>' in page


@pytest.mark.parametrize("url", [reverse("dashboard"), "/"])
def test_every_entry_point_requires_login(client, db, url):
    response = client.get(url, follow=True)

    assert response.redirect_chain[-1][0].startswith(reverse("login"))
