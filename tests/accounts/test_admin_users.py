"""Staff admin: users (with their memberships) and memberships."""

from django.urls import reverse

from accounts.models import Membership, User


def test_user_pages_render_with_memberships(admin_client, owner, member, outsider):
    assert admin_client.get(reverse("admin:accounts_user_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:accounts_user_add")).status_code == 200
    page = admin_client.get(reverse("admin:accounts_user_change", args=[owner.pk]))
    assert page.status_code == 200
    assert b"org_acme" in page.content  # the membership inline


def test_user_changelist_filters_by_group(admin_client, support_staff, finance_staff):
    support = support_staff.groups.get()
    response = admin_client.get(reverse("admin:accounts_user_changelist"), {"groups__id__exact": support.pk})
    assert [user.username for user in response.context["cl"].result_list] == ["sue"]


def test_a_user_can_be_added_to_an_organisation_from_the_user_page(
    admin_client, admin_form_data, acme, outsider
):
    url = reverse("admin:accounts_user_change", args=[outsider.pk])
    data = admin_form_data(admin_client.get(url))
    prefix = "memberships"
    total = int(data[f"{prefix}-TOTAL_FORMS"])
    data |= {
        f"{prefix}-TOTAL_FORMS": str(total + 1),
        f"{prefix}-{total}-organisation": str(acme.pk),
        f"{prefix}-{total}-role": Membership.Role.MEMBER,
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors,
        [f.errors for i in response.context["inline_admin_formsets"] for f in i.formset.forms],
    )
    assert set(outsider.organisations.values_list("org_id", flat=True)) == {"org_acme", "org_globex"}


def test_membership_pages_render(admin_client, owner, member, outsider):
    membership = Membership.objects.get(user=owner)
    response = admin_client.get(reverse("admin:accounts_membership_changelist"))
    assert response.status_code == 200 and response.context["cl"].result_count == 3
    assert admin_client.get(reverse("admin:accounts_membership_add")).status_code == 200
    assert (
        admin_client.get(reverse("admin:accounts_membership_change", args=[membership.pk])).status_code == 200
    )


def test_membership_search_by_org_id(admin_client, owner, member, outsider):
    response = admin_client.get(reverse("admin:accounts_membership_changelist"), {"q": "org_globex"})
    assert [m.user for m in response.context["cl"].result_list] == [User.objects.get(username="oscar")]
