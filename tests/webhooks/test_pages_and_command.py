"""The webhooks page (owners edit, members read and redeliver, outsiders get 404), the admin and
``manage.py createwebhook``."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from webhooks.models import Delivery, SpendThreshold, WebhookEndpoint
from webhooks.services import webhook_endpoint_create, webhook_test_send

PAGE = "/orgs/org_acme/webhooks/"


@pytest.fixture
def endpoint(acme, allow_private):
    return webhook_endpoint_create(organisation=acme, url="http://127.0.0.1:9/hook").endpoint


def test_an_owner_adds_an_endpoint_and_sees_its_secret_once(client, owner, allow_private):
    client.force_login(owner)
    response = client.post(
        PAGE, {"url": "http://127.0.0.1:9/new", "event_types": ["usage.tier_reached", "api_key.created"]}
    )
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["usage.tier_reached", "api_key.created"]
    first = client.get(PAGE)
    assert endpoint.secret in first.content.decode()
    assert endpoint.secret not in client.get(PAGE).content.decode()


def test_an_unsafe_url_is_refused_on_the_page(client, owner):
    client.force_login(owner)
    response = client.post(PAGE, {"url": "https://169.254.169.254/", "event_types": ["usage.tier_reached"]})
    assert response.status_code == 400
    assert "not public" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_owner_edits_rotates_tests_disables_and_sets_thresholds(client, owner, endpoint, monkeypatch):
    monkeypatch.setattr("webhooks.tasks.deliver.apply_async", lambda *a, **k: None)
    client.force_login(owner)
    edit = reverse("webhook-edit", args=["org_acme", endpoint.pk])
    assert client.get(edit).status_code == 200
    response = client.post(
        edit, {"url": "http://127.0.0.1:9/changed", "event_types": ["api_key.revoked"], "email_alerts": "on"}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types, endpoint.email_alerts) == (
        "http://127.0.0.1:9/changed",
        ["api_key.revoked"],
        True,
    )
    old_secret = endpoint.secret
    client.post(reverse("webhook-action", args=["org_acme", endpoint.pk, "rotate"]))
    endpoint.refresh_from_db()
    assert endpoint.secret != old_secret
    assert endpoint.secret in client.get(PAGE).content.decode()
    client.post(reverse("webhook-action", args=["org_acme", endpoint.pk, "test"]))
    assert Delivery.objects.filter(endpoint=endpoint, event__type="webhook.test").count() == 1
    client.post(reverse("webhook-action", args=["org_acme", endpoint.pk, "disable"]))
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    refused = client.post(reverse("webhook-action", args=["org_acme", endpoint.pk, "test"]), follow=True)
    assert "enable it before sending a test event" in refused.content.decode()
    assert Delivery.objects.filter(endpoint=endpoint, event__type="webhook.test").count() == 1
    client.post(reverse("webhook-action", args=["org_acme", endpoint.pk, "enable"]))
    endpoint.refresh_from_db()
    assert endpoint.is_active
    client.post(reverse("webhook-threshold-add", args=["org_acme"]), {"amount": "250"})
    threshold = SpendThreshold.objects.get()
    assert str(threshold.amount) == "250.00"
    client.post(reverse("webhook-threshold-remove", args=["org_acme", threshold.pk]))
    assert not SpendThreshold.objects.exists()


def test_a_member_reads_and_redelivers_but_changes_nothing(
    client, member, endpoint, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        "webhooks.tasks.deliver.apply_async", lambda args, kwargs=None, **o: sent.append(args)
    )
    delivery = Delivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    from webhooks.delivery import delivery_attempt

    delivery_attempt(delivery_id=delivery.pk)  # refused connection: one failed attempt to show
    client.force_login(member)
    page = client.get(PAGE)
    assert page.status_code == 200
    body = page.content.decode()
    assert endpoint.url in body and "webhook.test" in body
    assert endpoint.secret not in body
    assert "Add endpoint" not in body
    for url, data in [
        (PAGE, {"url": "http://127.0.0.1:9/x", "event_types": ["api_key.created"]}),
        (reverse("webhook-edit", args=["org_acme", endpoint.pk]), {}),
        (reverse("webhook-action", args=["org_acme", endpoint.pk, "rotate"]), {}),
        (reverse("webhook-threshold-add", args=["org_acme"]), {"amount": "5"}),
    ]:
        assert client.post(url, data).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("webhook-redeliver", args=["org_acme", delivery.pk]))
    assert response.status_code == 302
    assert sent == [[delivery.pk]]


def test_an_outsider_gets_404(client, outsider, endpoint):
    client.force_login(outsider)
    assert client.get(PAGE).status_code == 404
    assert client.post(reverse("webhook-action", args=["org_acme", endpoint.pk, "rotate"])).status_code == 404
    assert client.get("/orgs/org_globex/webhooks/").status_code == 200


def test_anonymous_is_sent_to_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_reads_in_a_constant_number_of_queries(
    client, owner, endpoint, django_assert_max_num_queries
):
    from webhooks.delivery import delivery_attempt

    for _ in range(5):
        delivery_attempt(delivery_id=Delivery.objects.get(event=webhook_test_send(endpoint=endpoint)).pk)
    client.force_login(owner)
    with django_assert_max_num_queries(12):
        assert client.get(PAGE).status_code == 200


def test_createwebhook_prints_the_secret_alone_on_the_last_line(acme, allow_private):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "createwebhook",
        "org_acme",
        "http://127.0.0.1:9/cmd",
        "--event",
        "usage.tier_reached",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip().splitlines()[-1]
    endpoint = WebhookEndpoint.objects.get()
    assert secret == endpoint.secret and secret.startswith("whsec_")
    assert endpoint.event_types == ["usage.tier_reached"]
    call_command(
        "createwebhook", "org_acme", "http://127.0.0.1:9/all", stdout=io.StringIO(), stderr=io.StringIO()
    )
    assert len(WebhookEndpoint.objects.get(url__endswith="/all").event_types) == 5


def test_createwebhook_refuses_an_unsafe_url_and_an_unknown_org(acme):
    with pytest.raises(CommandError, match="https"):
        call_command("createwebhook", "org_acme", "http://example.com/x", stdout=io.StringIO())
    with pytest.raises(CommandError, match="unknown"):
        call_command("createwebhook", "org_nope", "https://example.com/x", stdout=io.StringIO())


def test_the_admin_lists_and_redelivers(client, superuser, endpoint, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "webhooks.tasks.deliver.apply_async", lambda args, kwargs=None, **o: sent.append(args)
    )
    delivery = Delivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    client.force_login(superuser)
    for name in ("webhookendpoint", "event", "delivery", "spendthreshold"):
        assert client.get(reverse(f"admin:webhooks_{name}_changelist")).status_code == 200
    assert client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk])).status_code == 200
    response = client.post(
        reverse("admin:webhooks_delivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
