from decimal import Decimal

from django.db import migrations

STANDARD_TIERS = [
    ("tier1", 1, Decimal("0")),
    ("tier2", 1_001, Decimal("10")),
    ("tier3", 10_001, Decimal("20")),
    ("tier4", 100_001, Decimal("30")),
]


def create_standard_plan(apps, schema_editor):
    PricingPlan = apps.get_model("usage", "PricingPlan")
    PricingTier = apps.get_model("usage", "PricingTier")
    plan, created = PricingPlan.objects.get_or_create(
        name="standard",
        defaults={
            "per_job_fee": Decimal("0"),
            "transcription_rate": Decimal("0.01"),
            "note_rate": Decimal("0.02"),
        },
    )
    if created:
        PricingTier.objects.bulk_create(
            PricingTier(plan=plan, name=name, first_rank=first_rank, discount_percent=discount)
            for name, first_rank, discount in STANDARD_TIERS
        )


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]

    operations = [migrations.RunPython(create_standard_plan, migrations.RunPython.noop)]
