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
    ("accounts", "servicekey"),
    ("webhooks", "webhookendpoint"),
    ("webhooks", "event"),
    ("webhooks", "delivery"),
    ("webhooks", "spendthreshold"),
]


def changelist(app_label, model):
    return reverse(f"admin:{app_label}_{model}_changelist")


def test_the_roles_exist_with_their_extra_permissions(db):
    support = set(Group.objects.get(name=SUPPORT).permissions.values_list("codename", flat=True))
    finance = set(Group.objects.get(name=FINANCE).permissions.values_list("codename", flat=True))
    views = {
        f"view_{model._meta.model_name}"
        for app_label in ("accounts", "usage", "webhooks")
        for model in apps.get_app_config(app_label).get_models()
    }
    assert views <= support and views <= finance
    assert {codename for codename in support if not codename.startswith("view_")} == {
        "revoke_apikey",
        "revoke_servicekey",
        "recompute_usage",
        "redeliver_delivery",
    }
    assert {"change_pricingplan", "change_free_job_allowance", "change_organisation_plan"} <= finance
    assert not {
        "change_organisation",
        "change_job",
        "add_apikey",
        "change_user",
        "add_servicekey",
        "change_webhookendpoint",
        "delete_webhookendpoint",
    } & (support | finance)
    assert "revoke_servicekey" not in finance and "redeliver_delivery" not in finance


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


def test_support_revokes_a_service_key_and_finance_cannot(client, support_staff, finance_staff):
    from accounts.models import ServiceKey
    from accounts.services import service_key_create

    one = service_key_create(name="one").service_key
    two = service_key_create(name="two").service_key
    revoke_url = reverse("admin:accounts_servicekey_revoke", args=[one.pk])

    client.force_login(finance_staff)
    assert client.get(changelist("accounts", "servicekey")).context["action_form"] is None
    assert client.post(revoke_url).status_code == 403
    client.post(changelist("accounts", "servicekey"), {"action": "revoke_keys", "_selected_action": [two.pk]})
    assert not ServiceKey.objects.filter(revoked_at__isnull=False).exists()
    assert client.get(reverse("admin:accounts_servicekey_add")).status_code == 403

    client.force_login(support_staff)
    assert action_names(client, "accounts", "servicekey") == {"", "revoke_keys"}
    page = client.get(reverse("admin:accounts_servicekey_change", args=[one.pk]))
    assert page.status_code == 200 and page.context["can_revoke"] is True
    assert client.post(revoke_url).status_code == 302
    client.post(changelist("accounts", "servicekey"), {"action": "revoke_keys", "_selected_action": [two.pk]})
    assert ServiceKey.objects.filter(revoked_at__isnull=False).count() == 2
    assert client.get(reverse("admin:accounts_servicekey_add")).status_code == 403


@pytest.fixture
def webhook_delivery(acme, settings, monkeypatch):
    """A delivery of a test event to an endpoint of Acme; queueing is recorded, not sent."""
    from webhooks.models import Delivery
    from webhooks.services import webhook_endpoint_create, webhook_test_send

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    queued = []
    monkeypatch.setattr(
        "webhooks.tasks.deliver.apply_async", lambda args, kwargs=None, **options: queued.append(args)
    )
    endpoint = webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/hook").endpoint
    delivery = Delivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    queued.clear()
    return delivery, queued


def test_support_views_the_webhooks_and_redelivers(
    client, support_staff, webhook_delivery, django_capture_on_commit_callbacks
):
    delivery, queued = webhook_delivery
    client.force_login(support_staff)
    page = client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    endpoint_page = client.get(reverse("admin:webhooks_webhookendpoint_change", args=[delivery.endpoint_id]))
    assert endpoint_page.status_code == 200 and endpoint_page.context["has_change_permission"] is False
    assert action_names(client, "webhooks", "delivery") == {"", "redeliver"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            changelist("webhooks", "delivery"), {"action": "redeliver", "_selected_action": [delivery.pk]}
        )
    assert response.status_code == 302
    assert queued == [[delivery.pk]]


def test_finance_views_the_webhooks_but_cannot_redeliver_or_edit(
    client, finance_staff, webhook_delivery, admin_form_data, django_capture_on_commit_callbacks
):
    delivery, queued = webhook_delivery
    client.force_login(finance_staff)
    assert client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk])).status_code == 200
    assert client.get(changelist("webhooks", "delivery")).context["action_form"] is None
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            changelist("webhooks", "delivery"), {"action": "redeliver", "_selected_action": [delivery.pk]}
        )
    assert queued == []
    url = reverse("admin:webhooks_webhookendpoint_change", args=[delivery.endpoint_id])
    assert client.post(url, admin_form_data(client.get(url)) | {"is_active": ""}).status_code == 403
    delivery.endpoint.refresh_from_db()
    assert delivery.endpoint.is_active


def test_staff_without_a_role_cannot_redeliver(
    client, staff, webhook_delivery, django_capture_on_commit_callbacks
):
    delivery, queued = webhook_delivery
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            changelist("webhooks", "delivery"), {"action": "redeliver", "_selected_action": [delivery.pk]}
        )
    assert response.status_code == 403 and queued == []
