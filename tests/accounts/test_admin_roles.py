"""Who may do what in the staff admin: superusers, Support, Finance, staff with no role, customers."""

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.roles import FINANCE, SUPPORT

MODELS = [
    ("accounts", "organisation"),
    ("accounts", "apikey"),
    ("accounts", "membership"),
    ("accounts", "user"),
    ("usage", "job"),
    ("usage", "pricingplan"),
    ("usage", "pricingtier"),
    ("usage", "monthlyusage"),
    ("usage", "languageusage"),
    ("usage", "apicallcount"),
    ("usage", "stalemonth"),
]


def changelist(app_label, model):
    return reverse(f"admin:{app_label}_{model}_changelist")


def test_the_roles_exist_with_their_extra_permissions(db):
    support = set(Group.objects.get(name=SUPPORT).permissions.values_list("codename", flat=True))
    finance = set(Group.objects.get(name=FINANCE).permissions.values_list("codename", flat=True))
    views = {
        f"view_{model._meta.model_name}"
        for app_label in ("accounts", "usage")
        for model in apps.get_app_config(app_label).get_models()
    }
    assert views <= support and views <= finance
    assert {codename for codename in support if not codename.startswith("view_")} == {
        "revoke_apikey",
        "recompute_usage",
    }
    assert {"change_pricingplan", "change_free_job_allowance", "change_organisation_plan"} <= finance
    assert not {"change_organisation", "change_job", "add_apikey", "change_user"} & (support | finance)


@pytest.mark.parametrize(
    "url", ["/admin/", changelist("usage", "job"), changelist("accounts", "organisation")]
)
def test_a_customer_is_sent_to_the_login_page(client, owner, url):
    client.force_login(owner)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, db):
    response = client.get(changelist("usage", "job"))
    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))


def test_staff_without_a_role_see_nothing(client, staff, acme):
    client.force_login(staff)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert index.context["app_list"] == []
    for app_label, model in MODELS:
        assert client.get(changelist(app_label, model)).status_code == 403, model
    assert client.get(reverse("admin:accounts_organisation_change", args=[acme.pk])).status_code == 403


@pytest.mark.parametrize("persona", ["support_staff", "finance_staff"])
def test_both_roles_view_everything(client, request, persona, acme, acme_key, add_jobs):
    from tests.factories import at, make_job

    add_jobs([make_job(acme, created_at=at(2025, 1, 2), api_key=acme_key.api_key)])
    client.force_login(request.getfixturevalue(persona))
    for app_label, model in MODELS:
        assert client.get(changelist(app_label, model)).status_code == 200, model
    page = client.get(reverse("admin:accounts_organisation_change", args=[acme.pk]))
    assert page.status_code == 200 and b"usage-panel" in page.content


def test_support_cannot_edit_plans(client, support_staff, admin_form_data):
    from usage.models import PricingPlan

    client.force_login(support_staff)
    standard = PricingPlan.objects.get(name="standard")
    url = reverse("admin:usage_pricingplan_change", args=[standard.pk])
    page = client.get(url)
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert client.post(url, admin_form_data(page) | {"note_rate": "9"}).status_code == 403
    assert client.get(reverse("admin:usage_pricingplan_add")).status_code == 403
    standard.refresh_from_db()
    assert standard.note_rate != 9


def test_finance_edits_plans(client, finance_staff, admin_form_data):
    from usage.models import PricingPlan

    client.force_login(finance_staff)
    standard = PricingPlan.objects.get(name="standard")
    url = reverse("admin:usage_pricingplan_change", args=[standard.pk])
    response = client.post(url, admin_form_data(client.get(url)) | {"note_rate": "0.03"})
    assert response.status_code == 302
    standard.refresh_from_db()
    assert str(standard.note_rate) == "0.030000"


def test_finance_changes_billing_fields_only(client, finance_staff, admin_form_data, acme):
    client.force_login(finance_staff)
    url = reverse("admin:accounts_organisation_change", args=[acme.pk])
    page = client.get(url)
    assert set(page.context["adminform"].form.fields) == {"plan", "free_job_allowance"}
    response = client.post(url, admin_form_data(page) | {"free_job_allowance": "7", "name": "Hacked"})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.free_job_allowance == 7 and acme.name == "Acme"


def action_names(client, app_label, model):
    return {
        name
        for name, _ in client.get(changelist(app_label, model))
        .context["action_form"]
        .fields["action"]
        .choices
    }


def test_actions_follow_the_role(client, support_staff, finance_staff, acme):
    client.force_login(support_staff)
    assert action_names(client, "accounts", "organisation") == {"", "recompute_usage"}
    assert action_names(client, "accounts", "apikey") == {"", "revoke_keys"}
    client.force_login(finance_staff)
    assert action_names(client, "accounts", "organisation") == {"", "set_free_job_allowance"}
    assert client.get(changelist("accounts", "apikey")).context["action_form"] is None


def test_support_cannot_deactivate_by_posting_the_action(client, support_staff, acme):
    client.force_login(support_staff)
    client.post(
        changelist("accounts", "organisation"),
        {"action": "deactivate", "_selected_action": [acme.pk], "confirm": "yes"},
    )
    acme.refresh_from_db()
    assert acme.is_active


def test_staff_without_a_role_cannot_use_an_action_link(client, staff, acme):
    client.force_login(staff)
    response = client.post(
        changelist("accounts", "organisation"), {"action": "recompute_usage", "_selected_action": [acme.pk]}
    )
    assert response.status_code == 403
