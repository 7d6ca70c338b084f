"""A plan's currency: validated as an ISO 4217 code, and named wherever money is shown."""

import csv
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction
from django.urls import reverse

from tests.factories import at, make_job
from usage.models import PricingPlan, PricingTier
from usage.pricing import present_money_in
from usage.selectors import usage_report
from usage.services import organisation_plan_set

pytestmark = pytest.mark.usefixtures("mid_june_2025")

PAGE = reverse("usage-page", kwargs={"org_id": "org_acme"})
CSV = reverse("usage-csv", kwargs={"org_id": "org_acme"})


@pytest.fixture
def rupee_plan(acme):
    plan = PricingPlan.objects.create(name="india", transcription_rate=123, note_rate=456, currency="INR")
    PricingTier.objects.create(plan=plan, name="tier1", first_rank=1, discount_percent=0)
    organisation_plan_set(organisation=acme, plan=plan)
    return plan


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (Decimal("1234.565"), "USD", "$1,234.57"),
        (Decimal("1234.564999"), "EUR", "€1,234.56"),
        (Decimal("0"), "GBP", "£0.00"),
        (Decimal("1234567.891"), "INR", "₹1,234,567.89"),
        (Decimal("12.5"), "CHF", "CHF\u00a012.50"),
    ],
)
def test_money_is_shown_with_its_symbol_or_code_to_two_places(amount, currency, shown):
    assert present_money_in(amount, currency=currency) == shown


def test_the_exact_figure_has_five_places_and_the_code():
    assert present_money_in(Decimal("1234.567891"), currency="USD", exact=True) == "1,234.56789 USD"


def test_plans_default_to_usd():
    assert PricingPlan.objects.get(name="standard").currency == "USD"


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "", "U$D"])
def test_a_currency_must_be_three_capital_letters(code):
    plan = PricingPlan(name="bad", transcription_rate=1, note_rate=1, currency=code)
    with pytest.raises(ValidationError):
        plan.full_clean()
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        plan.save()


def test_the_page_shows_money_in_the_plans_currency_with_the_exact_figure_on_hover(
    as_member, acme, add_jobs, rupee_plan
):
    add_jobs([make_job(acme, created_at=at(2025, 6, 2), transcription_tokens=10_000_001, note_tokens=3)])
    final = usage_report(
        organisation=acme, start_month=at(2025, 6).date(), end_month=at(2025, 6).date()
    ).totals.final_cost

    page = as_member.get(PAGE).content.decode()

    assert final == Decimal("1230001.491")
    assert (
        'id="total-final-cost"><span class="money" title="1,230,001.49100 INR">₹1,230,001.49</span>' in page
    )
    assert "prices in INR" in page
    monthly = page[page.index('data-month="2025-06"') :]
    assert "₹1,230,001.49" in monthly[: monthly.index("</tr>")]


def test_the_csv_names_the_currency_starts_with_a_bom_and_ends_with_the_totals(
    as_member, acme, add_jobs, rupee_plan
):
    add_jobs(
        [
            make_job(acme, created_at=at(2025, 5, 2), language="Tamil"),
            make_job(acme, created_at=at(2025, 6, 2), language="Hindi"),
            make_job(acme, created_at=at(2025, 6, 3), language="Hindi"),
        ]
    )

    body = as_member.get(CSV, {"start": "2025-05", "end": "2025-06"}).content

    assert body.startswith(b"\xef\xbb\xbfrecord,")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert {"base_cost_INR", "final_cost_INR", "savings_INR"} <= rows[0].keys()
    assert [(row["record"], row["language"], row["jobs"]) for row in rows if row["record"] == "language"] == [
        ("language", "Hindi", "2"),
        ("language", "Tamil", "1"),
    ]
    total = rows[-1]
    months = [row for row in rows if row["record"] == "month"]
    assert total["record"] == "total" and (total["month_start"], total["month_end"]) == ("2025-05", "2025-06")
    assert total["jobs"] == "3"
    assert Decimal(total["final_cost_INR"]) == sum(Decimal(row["final_cost_INR"]) for row in months)


def test_the_json_api_stays_numbers_without_currency(client, acme, acme_key, add_jobs, rupee_plan):
    add_jobs([make_job(acme, created_at=at(2025, 6, 2), api_key=acme_key.api_key)])

    body = client.get("/usage", headers={"Authorization": f"Bearer {acme_key.plaintext}"}).content.decode()

    assert "INR" not in body and "currency" not in body


def test_the_admin_lists_the_currency_and_separates_thousands(admin_client, acme, add_jobs, rupee_plan):
    add_jobs([make_job(acme, created_at=at(2025, 6, 2), transcription_tokens=10_000_001, note_tokens=3)])

    plans = admin_client.get(reverse("admin:usage_pricingplan_changelist")).content.decode()
    panel = admin_client.get(reverse("admin:accounts_organisation_change", args=[acme.pk])).content.decode()

    assert "INR" in plans
    assert "1,230,001.49100 INR" in panel
