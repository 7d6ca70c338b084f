"""Staff admin: pricing plans with their tier ladder."""

from decimal import Decimal

import pytest
from django.urls import reverse

from tests.factories import at, make_job
from usage.models import Job, PricingPlan, PricingTier, StaleMonth

ADD = reverse("admin:usage_pricingplan_add")
TIERS = "tiers"


def change_url(plan):
    return reverse("admin:usage_pricingplan_change", args=[plan.pk])


def plan_data(*tiers, name="pro"):
    """POST data for the add form: tiers are (name, first_rank, discount)."""
    data = {
        "name": name,
        "currency": "USD",
        "per_job_fee": "0.5",
        "transcription_rate": "0.01",
        "note_rate": "0.02",
        f"{TIERS}-TOTAL_FORMS": str(len(tiers)),
        f"{TIERS}-INITIAL_FORMS": "0",
        f"{TIERS}-MIN_NUM_FORMS": "1",
        f"{TIERS}-MAX_NUM_FORMS": "1000",
    }
    for index, (tier_name, first_rank, discount) in enumerate(tiers):
        data |= {
            f"{TIERS}-{index}-name": tier_name,
            f"{TIERS}-{index}-first_rank": str(first_rank),
            f"{TIERS}-{index}-discount_percent": str(discount),
        }
    return data


@pytest.fixture
def standard():
    return PricingPlan.objects.get(name="standard")


def test_pages_render(admin_client, standard):
    response = admin_client.get(reverse("admin:usage_pricingplan_changelist"))
    assert response.status_code == 200
    assert b"tier2 from 1,001 at 10.00%" in response.content
    assert admin_client.get(ADD).status_code == 200
    assert admin_client.get(change_url(standard)).status_code == 200
    assert admin_client.get(reverse("admin:usage_pricingtier_changelist")).status_code == 200
    tier = standard.tiers.first()
    page = admin_client.get(reverse("admin:usage_pricingtier_change", args=[tier.pk]))
    assert page.status_code == 200 and page.context["has_change_permission"] is False


def test_a_valid_plan_is_created_with_its_tiers(admin_client, db):
    response = admin_client.post(ADD, plan_data(("t1", 1, 0), ("t2", 50, "12.5")))
    assert response.status_code == 302
    plan = PricingPlan.objects.get(name="pro")
    assert list(plan.tiers.values_list("name", "first_rank", "discount_percent")) == [
        ("t1", 1, Decimal("0")),
        ("t2", 50, Decimal("12.5")),
    ]


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([("t1", 2, 0)], "The first tier must start at rank 1."),
        ([("t1", 1, 0), ("t2", 1, 5)], "Please correct the duplicate data for first_rank."),
        ([("t1", 1, 0), ("t2", 10, "100.5")], "Ensure this value is less than or equal to 100."),
        ([("t1", 1, -1)], "Ensure this value is greater than or equal to 0."),
        ([], "A plan needs at least one tier."),
    ],
)
def test_an_invalid_ladder_is_refused(admin_client, db, tiers, message):
    response = admin_client.post(ADD, plan_data(*tiers))
    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not PricingPlan.objects.filter(name="pro").exists()


def test_deleting_every_tier_is_refused(admin_client, admin_form_data, standard):
    data = admin_form_data(admin_client.get(change_url(standard)))
    for index in range(int(data[f"{TIERS}-TOTAL_FORMS"])):
        data[f"{TIERS}-{index}-DELETE"] = "on"
    response = admin_client.post(change_url(standard), data)
    assert response.status_code == 200
    assert standard.tiers.count() == 4


def test_changing_tier_ranks_marks_the_plans_organisations_stale(
    admin_client, admin_form_data, acme, add_jobs
):
    add_jobs([make_job(acme, created_at=at(2025, 1, day)) for day in (1, 2, 3)])
    standard = PricingPlan.objects.get(name="standard")
    data = admin_form_data(admin_client.get(change_url(standard)))
    second = next(i for i in range(4) if data[f"{TIERS}-{i}-name"] == "tier2")
    data[f"{TIERS}-{second}-first_rank"] = "3"
    response = admin_client.post(change_url(standard), data, follow=True)
    assert b"will be recomputed" in response.content
    assert StaleMonth.objects.filter(organisation=acme, month__isnull=True).exists()
    # The next read resolves the mark: the third job of January is now in tier2.
    from usage.engine.refresh import usage_refresh

    usage_refresh(organisation_id=acme.pk)
    assert [job.tier for job in Job.objects.filter(organisation=acme).order_by("created_at")] == [1, 1, 2]


def test_changing_only_discounts_marks_nothing(admin_client, admin_form_data, acme, add_jobs):
    add_jobs([make_job(acme, created_at=at(2025, 1, 1))])
    standard = PricingPlan.objects.get(name="standard")
    data = admin_form_data(admin_client.get(change_url(standard)))
    data[f"{TIERS}-1-discount_percent"] = "15"
    assert admin_client.post(change_url(standard), data).status_code == 302
    assert not StaleMonth.objects.exists()
    assert PricingTier.objects.get(plan=standard, discount_percent=15)


def test_the_standard_plan_keeps_its_name_and_cannot_be_deleted(admin_client, standard):
    page = admin_client.get(change_url(standard))
    assert "name" not in page.context["adminform"].form.fields
    assert page.context["has_delete_permission"] is False
    assert admin_client.post(reverse("admin:usage_pricingplan_delete", args=[standard.pk])).status_code == 403
