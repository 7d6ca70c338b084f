"""The team page: invitations (new and existing users), roles, removals and who may do what."""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation, Membership, User
from accounts.services import membership_add
from accounts.team import (
    InvalidInvitationError,
    InvitationNotFoundError,
    LastOwnerError,
    invitation_accept,
    invitation_cancel,
    invitation_from_token,
    invitation_token,
    membership_remove,
    membership_role_set,
)
from portal.errors import DomainError

TEAM_URL = reverse("team", kwargs={"org_id": "org_acme"})


def _accept_url(token):
    return reverse("invitation-accept", kwargs={"token": token})


@pytest.fixture
def invite(django_capture_on_commit_callbacks):
    """Invite ``email`` as ``owner`` through the page; returns the link of the email sent."""

    def invite(client, owner, email, role="member"):
        client.force_login(owner)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(TEAM_URL, {"email": email, "role": role})
        assert response.status_code == 302, response.content.decode()
        client.logout()
        return re.search(r"http://testserver(/invitations/\S+/)", mail.outbox[-1].body).group(1)

    return invite


def test_an_owner_invites_and_a_new_person_sets_a_password_and_joins(client, owner, acme, invite):
    link = invite(client, owner, "nina@acme.test", role="owner")

    assert mail.outbox[-1].to == ["nina@acme.test"]
    assert "Acme" in mail.outbox[-1].subject
    assert "nina@acme.test" in client.get(link).content.decode()
    response = client.post(
        link, {"username": "nina", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("usage-page", kwargs={"org_id": "org_acme"})
    nina = User.objects.get(username="nina")
    assert nina.email == "nina@acme.test"
    assert nina.check_password("a-long-pass-phrase-9")
    assert Membership.objects.get(user=nina, organisation=acme).role == "owner"
    assert client.get(TEAM_URL).status_code == 200  # logged in as nina


def test_an_organisation_name_with_a_line_break_makes_a_one_line_subject(client, owner, acme, invite):
    acme.name = "Acme\nBcc: victim@example.test"
    acme.save(update_fields=["name"])

    invite(client, owner, "nina@acme.test")

    assert mail.outbox[-1].subject == "You're invited to Acme Bcc: victim@example.test on the Usage Portal"
    assert mail.outbox[-1].to == ["nina@acme.test"] and not mail.outbox[-1].bcc


def test_a_new_person_gets_field_errors_and_no_account_for_a_bad_password(client, owner, invite):
    link = invite(client, owner, "nina@acme.test")

    response = client.post(link, {"username": "nina", "password1": "123", "password2": "123"})

    assert response.status_code == 400
    assert not User.objects.filter(username="nina").exists()
    assert not Invitation.objects.get().is_accepted


def test_an_existing_user_logged_in_with_the_invited_address_joins(client, owner, outsider, acme, invite):
    link = invite(client, owner, "OSCAR@globex.test")
    client.force_login(outsider)

    assert "Join Acme" in client.get(link).content.decode()
    response = client.post(link)

    assert response.status_code == 302
    assert Membership.objects.get(user=outsider, organisation=acme).role == "member"
    assert Invitation.objects.get().accepted_by == outsider


def test_an_existing_user_not_logged_in_is_asked_to_log_in(client, owner, outsider, invite):
    link = invite(client, owner, "oscar@globex.test")

    page = client.get(link).content.decode()
    response = client.post(
        link, {"username": "oscar2", "password1": "x-long-pass-1", "password2": "x-long-pass-1"}
    )

    assert "Log in to accept" in page
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not User.objects.filter(username="oscar2").exists()


def test_an_invitation_cannot_be_reused(client, owner, outsider, acme, invite):
    link = invite(client, owner, "oscar@globex.test")
    client.force_login(outsider)
    client.post(link)
    membership_remove(
        organisation=acme, membership_id=Membership.objects.get(user=outsider, organisation=acme).pk
    )

    response = client.post(link)

    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert not Membership.objects.filter(user=outsider, organisation=acme).exists()


def test_another_address_is_refused(client, owner, member, acme, invite):
    link = invite(client, owner, "someone-else@acme.test", role="owner")
    client.force_login(member)

    shown = client.get(link)
    response = client.post(link)

    assert shown.status_code == response.status_code == 403
    assert Membership.objects.get(user=member, organisation=acme).role == "member"
    assert not Invitation.objects.get().is_accepted
    invitation = Invitation.objects.get()
    with pytest.raises(InvalidInvitationError):
        invitation_accept(token=invitation_token(invitation=invitation), user=member)


def test_an_expired_invitation_is_refused(client, owner, acme, invite):
    with time_machine.travel(dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC), tick=False):
        link = invite(client, owner, "nina@acme.test")
    with time_machine.travel(dt.datetime(2025, 3, 8, 11, 59, tzinfo=dt.UTC), tick=False):
        assert client.get(link).status_code == 200
    with time_machine.travel(dt.datetime(2025, 3, 8, 12, 1, tzinfo=dt.UTC), tick=False):
        response = client.post(
            link,
            {"username": "nina", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"},
        )

    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not User.objects.filter(username="nina").exists()


def test_a_forged_token_is_refused(client, owner, acme, invite):
    link = invite(client, owner, "nina@acme.test")

    assert client.get(link[:-3] + "xx/").status_code == 410


def test_inviting_a_member_again_is_an_error_on_the_form(client, owner, member):
    client.force_login(owner)

    response = client.post(TEAM_URL, {"email": "MAX@acme.test", "role": "member"})

    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    assert not mail.outbox


def test_an_owner_changes_a_role_and_removes_a_member(client, owner, member, acme):
    client.force_login(owner)
    membership = Membership.objects.get(user=member)

    client.post(
        reverse("team-role", kwargs={"org_id": "org_acme", "membership_id": membership.pk}), {"role": "owner"}
    )
    assert Membership.objects.get(pk=membership.pk).role == "owner"

    remove_url = reverse("team-remove", kwargs={"org_id": "org_acme", "membership_id": membership.pk})
    assert "Remove max" in client.get(remove_url).content.decode()
    response = client.post(remove_url)

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert User.objects.filter(pk=member.pk).exists()


def test_the_last_owner_can_be_neither_demoted_nor_removed(client, owner, member, acme):
    mine = Membership.objects.get(user=owner)
    with pytest.raises(LastOwnerError):
        membership_role_set(organisation=acme, membership_id=mine.pk, role="member")
    with pytest.raises(LastOwnerError):
        membership_remove(organisation=acme, membership_id=mine.pk)

    client.force_login(owner)
    response = client.post(
        reverse("team-role", kwargs={"org_id": "org_acme", "membership_id": mine.pk}),
        {"role": "member"},
        follow=True,
    )
    assert "at least one owner" in response.content.decode()
    client.post(reverse("team-remove", kwargs={"org_id": "org_acme", "membership_id": mine.pk}))
    assert Membership.objects.get(pk=mine.pk).role == "owner"


def test_with_a_second_owner_the_first_may_step_down_and_leave(client, owner, member, acme):
    membership_role_set(organisation=acme, membership_id=Membership.objects.get(user=member).pk, role="owner")
    mine = Membership.objects.get(user=owner)

    membership_role_set(organisation=acme, membership_id=mine.pk, role="member")
    membership_role_set(organisation=acme, membership_id=mine.pk, role="owner")
    client.force_login(owner)
    response = client.post(reverse("team-remove", kwargs={"org_id": "org_acme", "membership_id": mine.pk}))

    assert response["Location"] == reverse("dashboard")
    assert not Membership.objects.filter(pk=mine.pk).exists()


def test_a_membership_of_another_organisation_cannot_be_touched(client, owner, outsider, globex):
    theirs = Membership.objects.get(user=outsider, organisation=globex)
    client.force_login(owner)

    response = client.post(reverse("team-remove", kwargs={"org_id": "org_acme", "membership_id": theirs.pk}))

    assert response.status_code == 404
    assert Membership.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("persona", ["member", "support_staff"])
def test_members_and_staff_see_the_list_read_only(client, request, persona, owner, member):
    client.force_login(request.getfixturevalue(persona))
    membership = Membership.objects.get(user=member)

    page = client.get(TEAM_URL).content.decode()

    assert "olivia" in page and "max" in page
    assert "Send invitation" not in page and "team-remove" not in page and 'name="role"' not in page
    assert client.post(TEAM_URL, {"email": "x@acme.test", "role": "owner"}).status_code == 403
    role_url = reverse("team-role", kwargs={"org_id": "org_acme", "membership_id": membership.pk})
    assert client.post(role_url, {"role": "owner"}).status_code == 403
    remove_url = reverse("team-remove", kwargs={"org_id": "org_acme", "membership_id": membership.pk})
    assert client.post(remove_url).status_code == 403
    assert Membership.objects.get(pk=membership.pk).role == "member"
    assert not Invitation.objects.exists()


def test_outsiders_get_404_and_anonymous_users_the_login(client, outsider, owner):
    client.force_login(outsider)
    assert client.get(TEAM_URL).status_code == 404
    assert client.post(TEAM_URL, {"email": "x@acme.test", "role": "owner"}).status_code == 404
    client.logout()
    assert client.get(TEAM_URL).status_code == 302


def test_the_team_link_is_in_the_organisation_navigation(client, member):
    client.force_login(member)

    page = client.get(reverse("usage-page", kwargs={"org_id": "org_acme"})).content.decode()

    assert f'href="{TEAM_URL}"' in page


def test_the_owner_sees_pending_invitations(client, owner, acme, invite):
    invite(client, owner, "nina@acme.test")
    client.force_login(owner)

    page = client.get(TEAM_URL).content.decode()

    assert "nina@acme.test" in page and "Pending invitations" in page


def test_a_role_from_an_invitation_never_demotes_an_owner(owner, acme):
    invitation = Invitation.objects.create(organisation=acme, email="olivia@acme.test", role="member")
    membership_add(organisation=acme, user=owner, role="owner")

    membership = invitation_accept(token=invitation_token(invitation=invitation), user=owner)

    assert membership.role == "owner"


# --- Cancelling a pending invitation -------------------------------------------------------------


def _cancel_url(invitation, org_id="org_acme"):
    return reverse("team-invitation-cancel", kwargs={"org_id": org_id, "invitation_id": invitation.pk})


def test_an_owner_cancels_an_invitation_and_its_link_stops_working(client, owner, acme, invite):
    link = invite(client, owner, "nina@acme.test")
    invitation = Invitation.objects.get(email="nina@acme.test")
    client.force_login(owner)
    assert f'action="{_cancel_url(invitation)}"' in client.get(TEAM_URL).content.decode()

    response = client.post(_cancel_url(invitation), follow=True)

    page = response.content.decode()
    assert response.redirect_chain == [(TEAM_URL, 302)]
    assert "The invitation of nina@acme.test was cancelled" in page
    assert "No invitation is waiting to be accepted." in page
    assert not Invitation.objects.filter(pk=invitation.pk).exists()
    client.logout()
    refused = client.get(link)
    assert refused.status_code == 410
    assert "cancelled by an owner" in refused.content.decode()
    signed_up = client.post(
        link, {"username": "nina", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"}
    )
    assert signed_up.status_code == 410
    assert not User.objects.filter(username="nina").exists()


def test_cancelling_is_a_service_that_refuses_used_and_foreign_invitations(owner, outsider, acme, globex):
    pending = Invitation.objects.create(organisation=acme, email="nina@acme.test", role="member")
    used = Invitation.objects.create(organisation=acme, email="oscar@globex.test", role="member")
    token = invitation_token(invitation=pending)
    invitation_accept(token=invitation_token(invitation=used), user=outsider)

    with pytest.raises(InvitationNotFoundError):
        invitation_cancel(organisation=globex, invitation_id=pending.pk)
    with pytest.raises(DomainError, match="already been accepted"):
        invitation_cancel(organisation=acme, invitation_id=used.pk)
    assert invitation_cancel(organisation=acme, invitation_id=pending.pk).email == "nina@acme.test"

    with pytest.raises(InvalidInvitationError, match="cancelled"):
        invitation_from_token(token=token)
    with pytest.raises(InvitationNotFoundError):
        invitation_cancel(organisation=acme, invitation_id=pending.pk)
    assert Invitation.objects.filter(pk=used.pk).exists()
    assert Membership.objects.filter(user=outsider, organisation=acme).exists()


@pytest.mark.parametrize("persona", ["member", "support_staff"])
def test_members_and_staff_cannot_cancel_an_invitation(client, request, persona, acme):
    invitation = Invitation.objects.create(organisation=acme, email="nina@acme.test", role="owner")
    client.force_login(request.getfixturevalue(persona))

    assert client.post(_cancel_url(invitation)).status_code == 403
    assert "nina@acme.test" not in client.get(TEAM_URL).content.decode()
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_another_organisation_cannot_cancel_an_invitation(client, owner, outsider, acme):
    invitation = Invitation.objects.create(organisation=acme, email="nina@acme.test", role="member")
    client.force_login(outsider)

    # Not a member of acme: the organisation is not found; through its own organisation's URL,
    # the invitation is not one of globex's.
    assert client.post(_cancel_url(invitation)).status_code == 404
    assert client.post(_cancel_url(invitation, org_id="org_globex")).status_code == 404
    client.logout()
    assert client.post(_cancel_url(invitation)).status_code == 302  # to the login page
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_cancelling_needs_a_post_with_the_csrf_token(owner, acme):
    invitation = Invitation.objects.create(organisation=acme, email="nina@acme.test", role="member")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)

    assert browser.get(_cancel_url(invitation)).status_code == 405
    assert browser.post(_cancel_url(invitation)).status_code == 403
    assert Invitation.objects.filter(pk=invitation.pk).exists()
    page = browser.get(TEAM_URL).content.decode()
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post(_cancel_url(invitation), {"csrfmiddlewaretoken": csrf_token})
    assert response.status_code == 302
    assert not Invitation.objects.filter(pk=invitation.pk).exists()
