"""Staff admin: organisations (list, forms, usage panel, actions, plan/allowance changes)."""

from decimal import Decimal

import pytest
import time_machine
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Organisation
from accounts.services import api_key_create, organisation_create
from tests.factories import at, make_job
from usage.models import Job, MonthlyUsage, PricingPlan, PricingTier

NOW = at(2025, 3, 15)
CHANGELIST = reverse("admin:accounts_organisation_changelist")


def change_url(organisation):
    return reverse("admin:accounts_organisation_change", args=[organisation.pk])


def action(client, name, organisations, **extra):
    data = {"action": name, "_selected_action": [str(o.pk) for o in organisations], **extra}
    return client.post(CHANGELIST, data)


@pytest.fixture
def busy_acme(acme, owner, acme_key, add_jobs):
    """Acme with web and API jobs in February and March 2025."""
    add_jobs(
        [make_job(acme, created_at=at(2025, 2, day)) for day in (1, 2)]
        + [make_job(acme, created_at=at(2025, 3, day), api_key=acme_key.api_key) for day in (1, 2, 3)]
    )
    return acme


@pytest.fixture
def small_plan(db):
    """A plan whose second tier starts at rank 3, so re-tiering is visible with a few jobs."""
    plan = PricingPlan.objects.create(
        name="small", transcription_rate=Decimal("1"), note_rate=Decimal("1"), per_job_fee=Decimal("0")
    )
    PricingTier.objects.create(plan=plan, name="t1", first_rank=1, discount_percent=0)
    PricingTier.objects.create(plan=plan, name="t2", first_rank=3, discount_percent=50)
    return plan


def test_changelist_renders_for_a_superuser(admin_client, busy_acme, globex):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    content = response.content.decode()
    assert "org_acme" in content and "org_globex" in content
    assert "standard (default)" in content


def test_changelist_query_count_does_not_grow_with_rows(admin_client, django_assert_num_queries, db):
    def make(count, start):
        for index in range(start, start + count):
            organisation = organisation_create(name=f"Org {index:03d}", org_id=f"org_n{index}")
            api_key_create(organisation=organisation, name="k")

    make(5, 0)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(CHANGELIST).status_code == 200
    make(45, 5)
    with django_assert_num_queries(len(few.captured_queries)):
        response = admin_client.get(CHANGELIST)
    assert response.context["cl"].result_count == 50


def test_add_form_renders(admin_client, db):
    assert admin_client.get(reverse("admin:accounts_organisation_add")).status_code == 200


@time_machine.travel(NOW, tick=False)
def test_change_form_shows_usage_panel_and_customer_link(admin_client, busy_acme):
    response = admin_client.get(change_url(busy_acme))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'href="/orgs/org_acme/usage/"' in content
    assert "This month (2025-03)" in content
    assert "All time (2025-02 – 2025-03)" in content
    assert "tier1 (current)" in content
    # Three jobs this month, five all time; three of them submitted with a key.
    panel = response.context["adminform"].form.instance
    assert panel == busy_acme
    assert '<th scope="row">Jobs</th><td>3</td><td>5</td>' in content.replace("\n", "")
    assert "olivia" in content  # members inline
    assert "some api key" in content  # keys inline


@time_machine.travel(NOW, tick=False)
def test_add_creates_an_organisation_through_the_service_with_a_random_id(admin_client, admin_form_data, db):
    page = admin_client.get(reverse("admin:accounts_organisation_add"))
    data = admin_form_data(page) | {"name": "Initech", "org_id": "", "free_job_allowance": "10"}
    response = admin_client.post(reverse("admin:accounts_organisation_add"), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    organisation = Organisation.objects.get(name="Initech")
    assert organisation.org_id.startswith("org_") and len(organisation.org_id) == 16
    assert organisation.free_job_allowance == 10


def test_org_id_is_read_only_once_created(admin_client, acme):
    response = admin_client.get(change_url(acme))
    assert "org_id" not in response.context["adminform"].form.fields


def test_recompute_action_repairs_aggregates_and_logs(admin_client, busy_acme):
    MonthlyUsage.objects.filter(organisation=busy_acme).delete()
    response = action(admin_client, "recompute_usage", [busy_acme])
    assert response.status_code == 302
    assert sum(MonthlyUsage.objects.filter(organisation=busy_acme).values_list("jobs", flat=True)) == 5
    entry = LogEntry.objects.get(object_id=str(busy_acme.pk), action_flag=CHANGE)
    assert entry.get_change_message() == "Recomputed usage."


def test_deactivate_and_reactivate_actions(admin_client, acme, globex):
    asked = action(admin_client, "deactivate", [acme, globex])
    assert asked.status_code == 200
    assert b"Deactivate these organisations?" in asked.content
    assert not Organisation.objects.filter(is_active=False).exists()
    action(admin_client, "deactivate", [acme, globex], confirm="yes")
    assert not Organisation.objects.filter(is_active=True).exists()
    assert LogEntry.objects.filter(change_message="Deactivated.").count() == 2
    action(admin_client, "reactivate", [acme])
    acme.refresh_from_db()
    globex.refresh_from_db()
    assert acme.is_active and not globex.is_active
    assert LogEntry.objects.filter(change_message="Reactivated.", object_id=str(acme.pk)).exists()


def test_set_free_job_allowance_asks_then_applies_through_the_service(admin_client, busy_acme):
    page = action(admin_client, "set_free_job_allowance", [busy_acme])
    assert page.status_code == 200
    assert b"Set the free-job allowance" in page.content and b"Acme (org_acme)" in page.content

    for allowance in ("-1", "99999999999999999999"):  # below 0; past any integer column
        invalid = action(
            admin_client, "set_free_job_allowance", [busy_acme], apply="yes", allowance=allowance
        )
        assert invalid.status_code == 200 and invalid.context["form"].errors["allowance"]

    response = action(admin_client, "set_free_job_allowance", [busy_acme], apply="yes", allowance="3")
    assert response.status_code == 302
    busy_acme.refresh_from_db()
    assert busy_acme.free_job_allowance == 3
    assert Job.objects.filter(organisation=busy_acme, is_free=True).count() == 3
    free_rows = MonthlyUsage.objects.filter(organisation=busy_acme, is_free=True)
    assert sum(row.jobs for row in free_rows) == 3
    assert LogEntry.objects.filter(change_message="Set the free-job allowance to 3.").exists()


def test_allowance_changed_in_the_form_refreshes_free_jobs(admin_client, admin_form_data, busy_acme):
    page = admin_client.get(change_url(busy_acme))
    response = admin_client.post(change_url(busy_acme), admin_form_data(page) | {"free_job_allowance": "2"})
    assert response.status_code == 302
    assert Job.objects.filter(organisation=busy_acme, is_free=True).count() == 2
    free_rows = MonthlyUsage.objects.filter(organisation=busy_acme, is_free=True)
    assert sum(row.jobs for row in free_rows) == 2


def test_plan_changed_in_the_form_retiers_jobs(admin_client, admin_form_data, busy_acme, small_plan):
    page = admin_client.get(change_url(busy_acme))
    response = admin_client.post(change_url(busy_acme), admin_form_data(page) | {"plan": str(small_plan.pk)})
    assert response.status_code == 302
    busy_acme.refresh_from_db()
    assert busy_acme.plan == small_plan
    # March has three jobs: the third reaches t2 (rank 3).
    march = Job.objects.filter(organisation=busy_acme, month="2025-03-01").order_by("created_at")
    assert [job.tier for job in march] == [1, 1, 2]
    assert MonthlyUsage.objects.filter(organisation=busy_acme, month="2025-03-01", tier=2).exists()


def test_renaming_keeps_plan_and_allowance(admin_client, admin_form_data, busy_acme):
    page = admin_client.get(change_url(busy_acme))
    response = admin_client.post(change_url(busy_acme), admin_form_data(page) | {"name": "Acme Ltd"})
    assert response.status_code == 302
    busy_acme.refresh_from_db()
    assert busy_acme.name == "Acme Ltd" and busy_acme.plan is None and busy_acme.free_job_allowance == 0


def test_recompute_refuses_too_many_organisations(admin_client, acme, globex, monkeypatch):
    import usage.admin.organisations

    monkeypatch.setattr(usage.admin.organisations, "RECOMPUTE_ACTION_LIMIT", 1)
    response = action(admin_client, "recompute_usage", [acme, globex])
    assert response.status_code == 302
    assert b"Select at most 1 organisations" in admin_client.get(response.url).content
    assert not LogEntry.objects.exists()


def test_deactivating_in_the_form_keeps_everything_else(admin_client, admin_form_data, busy_acme):
    page = admin_client.get(change_url(busy_acme))
    data = admin_form_data(page)
    del data["is_active"]
    assert admin_client.post(change_url(busy_acme), data).status_code == 302
    busy_acme.refresh_from_db()
    assert not busy_acme.is_active and busy_acme.name == "Acme"
