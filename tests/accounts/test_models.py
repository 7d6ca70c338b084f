"""Every invariant is enforced by the database itself, not only by forms."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts.models import ApiKey, Membership, Organisation
from tests.factories import at
from usage.models import Job, PricingPlan, PricingTier


def rejected(**kwargs):
    """Assert that creating ``model`` with these values violates a database constraint."""
    model = kwargs.pop("model")
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(**kwargs)


def job_values(organisation, **overrides):
    values = {
        "organisation": organisation,
        "source": "web",
        "external_id": "j-1",
        "created_at": at(2025, 1, 3),
        "month": dt.date(2025, 1, 1),
        "language": "Hindi",
        "audio_duration_seconds": 1,
        "status": "completed",
    }
    values.update(overrides)
    return values


def test_organisation_constraints(acme):
    rejected(model=Organisation, org_id="org_acme", name="Duplicate")
    rejected(model=Organisation, org_id="ACME", name="Bad id")
    rejected(model=Organisation, org_id="org_UPPER", name="Bad id")
    rejected(model=Organisation, org_id="org_neg", name="Negative", free_job_allowance=-1)


def test_membership_and_key_constraints(acme, owner):
    rejected(model=Membership, organisation=acme, user=owner, role="member")
    other = Organisation.objects.create(org_id="org_other", name="Other")
    rejected(model=Membership, organisation=other, user=owner, role="admin")
    ApiKey.objects.create(organisation=acme, name="prod", lookup="aaaaaaaaaaaa", digest="x")
    rejected(model=ApiKey, organisation=acme, name="prod", lookup="bbbbbbbbbbbb", digest="x")
    rejected(model=ApiKey, organisation=acme, name="", lookup="cccccccccccc", digest="x")
    rejected(model=ApiKey, organisation=other, name="dup-lookup", lookup="aaaaaaaaaaaa", digest="x")
    ApiKey.objects.create(organisation=other, name="prod", lookup="dddddddddddd", digest="x")


def test_job_constraints(acme):
    Job.objects.create(**job_values(acme))
    rejected(model=Job, **job_values(acme))  # same external_id in the same organisation
    rejected(model=Job, **job_values(acme, external_id="j-2", status="lost"))
    rejected(model=Job, **job_values(acme, external_id="j-3", audio_duration_seconds=-1))
    rejected(model=Job, **job_values(acme, external_id="j-4", transcription_tokens=-5))
    rejected(model=Job, **job_values(acme, external_id="j-5", note_tokens=-5))
    rejected(model=Job, **job_values(acme, external_id="j-6", source="api"))  # api job without a key
    key = ApiKey.objects.create(organisation=acme, name="prod", lookup="eeeeeeeeeeee", digest="x")
    rejected(model=Job, **job_values(acme, external_id="j-7", api_key=key, source="web"))
    rejected(model=Job, **job_values(acme, external_id="j-8", tier=0))
    other = Organisation.objects.create(org_id="org_other", name="Other")
    Job.objects.create(**job_values(other))  # external ids are unique per organisation only


def test_pricing_constraints(db):
    plan = PricingPlan.objects.create(name="custom", transcription_rate=1, note_rate=1)
    rejected(model=PricingPlan, name="custom", transcription_rate=1, note_rate=1)
    rejected(model=PricingPlan, name="negative", transcription_rate=-1, note_rate=1)
    PricingTier.objects.create(plan=plan, name="tier1", first_rank=1)
    rejected(model=PricingTier, plan=plan, name="tier1", first_rank=5)
    rejected(model=PricingTier, plan=plan, name="tier2", first_rank=1)
    rejected(model=PricingTier, plan=plan, name="tier0", first_rank=0)
    rejected(model=PricingTier, plan=plan, name="tier9", first_rank=9, discount_percent=101)


def test_the_standard_plan_is_created_by_a_migration(db):
    plan = PricingPlan.objects.get(name="standard")
    assert (plan.per_job_fee, plan.transcription_rate, plan.note_rate) == (
        Decimal("0"),
        Decimal("0.01"),
        Decimal("0.02"),
    )
    tiers = list(plan.tiers.order_by("first_rank").values_list("name", "first_rank", "discount_percent"))
    assert tiers == [("tier1", 1, 0), ("tier2", 1001, 10), ("tier3", 10001, 20), ("tier4", 100001, 30)]

