"""The stored aggregates and the report agree with a job-by-job reference of the SPEC.

(Long because it is the one place where every rule is checked against the reference; splitting it
would scatter the rules.)
"""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Organisation
from accounts.services import api_key_create, organisation_create
from tests.factories import at, make_job
from usage.engine.recompute import usage_recompute
from usage.engine.refresh import usage_refresh, usage_refresh_organisations
from usage.models import Job, LanguageUsage, MonthlyUsage, PricingPlan, PricingTier, StaleMonth
from usage.selectors import usage_all_time, usage_report
from usage.services import (
    jobs_upsert,
    organisation_free_allowance_set,
    organisation_plan_set,
    pricing_plan_tiers_changed,
)

from .reference import reference_usage

TIERS = [("tier1", 1, Decimal("0")), ("tier2", 4, Decimal("10")), ("tier3", 8, Decimal("25"))]
_org_numbers = itertools.count(1)


def small_plan():
    plan, created = PricingPlan.objects.get_or_create(
        name="small",
        defaults={
            "per_job_fee": Decimal("0.003"),
            "transcription_rate": Decimal("0.01"),
            "note_rate": Decimal("0.02"),
        },
    )
    if created:
        PricingTier.objects.bulk_create(
            PricingTier(plan=plan, name=name, first_rank=first, discount_percent=discount)
            for name, first, discount in TIERS
        )
    return plan


# Timestamps from a small set around a year boundary, so ties and month/year edges are common.
MOMENTS = [
    at(2024, 12, 31, 23, 59, 59),
    at(2024, 12, 15),
    at(2025, 1, 1, 0, 0, 0),
    at(2025, 1, 1, 0, 0, 0),
    at(2025, 1, 31, 23, 59, 59),
    at(2025, 2, 1, 0, 0, 0),
    at(2025, 2, 14),
    at(2025, 1, 10),
]
job_strategy = st.fixed_dictionaries(
    {
        "created_at": st.sampled_from(MOMENTS),
        "key": st.sampled_from([None, "alpha", "beta"]),
        "transcription_tokens": st.integers(min_value=0, max_value=5000),
        "note_tokens": st.integers(min_value=0, max_value=5000),
        "language": st.sampled_from(["Hindi", "Tamil"]),
    }
)


def check_against_reference(organisation, keys, jobs, *, allowance):
    plan = PricingPlan.objects.get(name="small")
    expected = reference_usage(
        jobs=jobs,
        per_job_fee=plan.per_job_fee,
        transcription_rate=plan.transcription_rate,
        note_rate=plan.note_rate,
        tiers=TIERS,
        allowance=allowance,
    )
    report = usage_report(
        organisation=organisation, start_month=dt.date(2024, 12, 1), end_month=dt.date(2025, 2, 1)
    )
    for month_usage in report.months:
        rows = {key: value for key, value in expected.items() if key[0] == month_usage.month}
        assert month_usage.jobs == sum(value["jobs"] for value in rows.values())
        assert month_usage.base_cost == sum((value["base"] for value in rows.values()), Decimal(0))
        assert month_usage.final_cost == sum((value["final"] for value in rows.values()), Decimal(0))
        for name, _, _ in TIERS:
            assert month_usage.tiers[name] == sum(value["tiers"][name] for value in rows.values())
    for name, key_usage in report.keys.items():
        rows = [value for key, value in expected.items() if key[1] == name]
        assert key_usage.jobs == sum(value["jobs"] for value in rows)
        assert key_usage.final_cost == sum((value["final"] for value in rows), Decimal(0))
        assert key_usage.tiers == {tier: sum(value["tiers"][tier] for value in rows) for tier, _, _ in TIERS}
    assert report.web.jobs == sum(value["jobs"] for key, value in expected.items() if key[1] is None)
    assert report.totals.final_cost == sum((value["final"] for value in expected.values()), Decimal(0))
    assert report.totals.final_cost == sum((m.final_cost for m in report.months), Decimal(0))
    assert report.totals.final_cost == report.web.final_cost + sum(
        (k.final_cost for k in report.keys.values()), Decimal(0)
    )
    assert report.free_jobs_left == max(0, allowance - len(jobs))
    assert set(report.keys) == {job["key"] for job in jobs if job["key"]}


def new_organisation(allowance):
    organisation = organisation_create(
        name="Random", org_id=f"org_rand{next(_org_numbers)}", plan=small_plan(), free_job_allowance=allowance
    )
    keys = {name: api_key_create(organisation=organisation, name=name).api_key for name in ("alpha", "beta")}
    return organisation, keys


def write(organisation, keys, jobs, *, batch_size):
    inputs = [
        make_job(
            organisation,
            created_at=job["created_at"],
            api_key=keys.get(job["key"]),
            external_id=f"r-{index}",
            transcription_tokens=job["transcription_tokens"],
            note_tokens=job["note_tokens"],
            language=job["language"],
        )
        for index, job in enumerate(jobs)
    ]
    for start in range(0, len(inputs), batch_size):
        jobs_upsert(jobs=inputs[start : start + batch_size])
    usage_refresh(organisation_id=organisation.pk)


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    jobs=st.lists(job_strategy, max_size=24),
    allowance=st.integers(min_value=0, max_value=12),
    batch_size=st.integers(min_value=1, max_value=25),
)
def test_aggregates_equal_the_reference_whatever_the_batches(jobs, allowance, batch_size):
    organisation, keys = new_organisation(allowance)
    write(organisation, keys, jobs, batch_size=batch_size)
    check_against_reference(organisation, keys, jobs, allowance=allowance)


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    jobs=st.lists(job_strategy, min_size=1, max_size=20),
    moved=st.data(),
    allowance=st.integers(min_value=0, max_value=8),
)
def test_late_and_moved_jobs_keep_aggregates_exact(jobs, moved, allowance):
    """Re-importing jobs with new timestamps, in any month, keeps every number exact."""
    organisation, keys = new_organisation(allowance)
    write(organisation, keys, jobs, batch_size=100)
    indexes = moved.draw(st.lists(st.integers(min_value=0, max_value=len(jobs) - 1), max_size=5, unique=True))
    for index in indexes:
        jobs[index] = {**jobs[index], "created_at": moved.draw(st.sampled_from(MOMENTS))}
    write(organisation, keys, [jobs[index] for index in indexes] and jobs, batch_size=3)
    check_against_reference(organisation, keys, jobs, allowance=allowance)


def test_allowance_and_plan_changes_refresh_the_affected_months(db):
    organisation, keys = new_organisation(0)
    jobs = [
        {
            "created_at": moment,
            "key": "alpha",
            "transcription_tokens": 1000,
            "note_tokens": 0,
            "language": "Hindi",
        }
        for moment in MOMENTS * 2
    ]
    write(organisation, keys, jobs, batch_size=50)
    organisation_free_allowance_set(organisation=organisation, allowance=7)
    check_against_reference(organisation, keys, jobs, allowance=7)
    organisation_free_allowance_set(organisation=organisation, allowance=2)
    check_against_reference(organisation, keys, jobs, allowance=2)

    # Moving to the standard plan: every job is tier1 there, so the stored tiers change too.
    organisation_plan_set(organisation=organisation, plan=None)
    report = usage_report(
        organisation=organisation, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 1, 1)
    )
    assert report.months[0].tiers == {"tier1": 8, "tier2": 0, "tier3": 0, "tier4": 0}
    assert set(Job.objects.filter(organisation=organisation).values_list("tier", flat=True)) == {1}


def test_changing_a_plans_tier_ranks_marks_its_organisations_stale(db):
    organisation, keys = new_organisation(0)
    jobs = [
        {
            "created_at": at(2025, 1, 1 + day),
            "key": None,
            "transcription_tokens": 0,
            "note_tokens": 0,
            "language": "Hindi",
        }
        for day in range(10)
    ]
    write(organisation, keys, jobs, batch_size=50)
    PricingTier.objects.filter(plan__name="small", name="tier2").update(first_rank=6)
    assert pricing_plan_tiers_changed(plan_id=organisation.plan_id) >= 1
    assert StaleMonth.objects.filter(organisation=organisation, month=None).exists()
    report = usage_report(
        organisation=organisation, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 1, 1)
    )
    assert report.months[0].tiers == {"tier1": 5, "tier2": 2, "tier3": 3}
    PricingTier.objects.filter(plan__name="small", name="tier2").update(first_rank=4)


def usage_rows():
    rows = MonthlyUsage.objects.values_list(
        "month", "api_key_id", "tier", "is_free", "jobs", "transcription_tokens"
    )
    return sorted(rows, key=lambda row: tuple((value is None, value or 0) for value in row))


def test_recompute_twice_is_identical_and_repairs_damage(db, acme, acme_key, add_jobs):
    add_jobs(
        make_job(acme, created_at=at(2025, 3, day % 28 + 1), api_key=acme_key.api_key if day % 2 else None)
        for day in range(1200)
    )
    snapshot = usage_rows()
    assert usage_recompute().rows_corrected == 0
    assert usage_recompute().rows_corrected == 0

    # A run that died halfway: some rows lost, some wrong, some tiers reset, an extra row.
    MonthlyUsage.objects.filter(tier=2).delete()
    MonthlyUsage.objects.filter(tier=1).update(jobs=1)
    Job.objects.filter(pk__in=list(Job.objects.filter(tier=2).values_list("pk", flat=True)[:10])).update(
        tier=1
    )
    LanguageUsage.objects.all().delete()
    MonthlyUsage.objects.create(
        organisation=acme,
        month=dt.date(2020, 1, 1),
        tier=1,
        is_free=False,
        jobs=5,
        completed_jobs=0,
        audio_duration_seconds=0,
        transcription_tokens=0,
        note_tokens=0,
    )
    result = usage_recompute()
    assert result.rows_corrected > 0
    assert result.jobs_retiered == 10
    assert result.months == 1  # March; the stray 2020 row is gone, not counted
    assert usage_rows() == snapshot
    assert usage_recompute().rows_corrected == 0


def test_a_job_loaded_into_a_closed_month_shows_at_the_next_read(db, acme, acme_key, add_jobs):
    add_jobs([make_job(acme, created_at=at(2025, 1, 5), api_key=acme_key.api_key)])
    usage_recompute()
    jobs_upsert(jobs=[make_job(acme, created_at=at(2024, 11, 30, 23, 59), api_key=acme_key.api_key)])
    # No refresh by the writer: the read itself must resolve the stale month.
    report = usage_report(organisation=acme, start_month=dt.date(2024, 11, 1), end_month=dt.date(2025, 1, 1))
    assert [month.jobs for month in report.months] == [1, 0, 1]
    assert usage_all_time(organisation=acme).total_jobs == 2


def test_reimporting_the_same_jobs_changes_nothing(db, acme, acme_key, add_jobs):
    jobs = [
        make_job(acme, created_at=at(2025, 5, 1 + index % 20), api_key=acme_key.api_key)
        for index in range(50)
    ]
    add_jobs(jobs)
    before = sorted(Job.objects.values_list("pk", "external_id", "created_at", "tier", "is_free"))
    result = add_jobs(jobs)
    assert (result.created, result.updated) == (0, 50)
    assert sorted(Job.objects.values_list("pk", "external_id", "created_at", "tier", "is_free")) == before


def test_report_query_count_does_not_grow_with_jobs(db, acme, globex, django_assert_num_queries, add_jobs):
    small_key = api_key_create(organisation=acme, name="k").api_key
    big_key = api_key_create(organisation=globex, name="k").api_key
    add_jobs(
        make_job(acme, created_at=at(2025, 1 + index % 12, 1 + index % 27), api_key=small_key)
        for index in range(10)
    )
    add_jobs(
        make_job(
            globex,
            created_at=at(2025, 1 + index % 12, 1 + index % 27, index % 24),
            api_key=big_key if index % 3 else None,
            language=["Hindi", "Tamil"][index % 2],
        )
        for index in range(10_000)
    )
    counts = []
    for organisation in (acme, globex):
        with django_assert_num_queries(6) as context:
            usage_report(
                organisation=organisation, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 12, 1)
            )
        counts.append(len(context.captured_queries))
    assert counts[0] == counts[1]
    report = usage_report(
        organisation=globex, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 12, 1)
    )
    assert report.totals.jobs == 10_000
    assert report.totals.tiers["tier1"] == 10_000  # 834 jobs a month never leave tier1


def test_one_refresh_of_many_organisations_is_exact(db):
    """An import touching hundreds of organisations refreshes them together (a widened scope)."""
    from usage.engine.refresh import usage_refresh_organisations

    organisations = [organisation_create(name=f"Many {n}", org_id=f"org_many{n}") for n in range(150)]
    jobs = [
        make_job(organisation, created_at=at(2025, 1 + (n + i) % 3, 1 + i), external_id=f"m-{i}")
        for n, organisation in enumerate(organisations)
        for i in range(1 + n % 4)
    ]
    jobs_upsert(jobs=jobs)
    assert usage_refresh_organisations(organisation_ids=[o.pk for o in organisations]).rows_corrected > 0
    assert not StaleMonth.objects.exists()
    for n, organisation in enumerate(organisations):
        report = usage_report(
            organisation=organisation, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 3, 1)
        )
        assert report.totals.jobs == 1 + n % 4
    assert usage_recompute().rows_corrected == 0


def test_the_reconcile_catches_jobs_edited_behind_the_portals_back(db, acme, add_jobs):
    """Raw edits (no stale marks) of a key, a language or tokens are each found by the reconcile."""
    keys = [api_key_create(organisation=acme, name=name).api_key for name in ("one", "two")]
    add_jobs(
        make_job(
            acme, created_at=at(2025, 4 + i % 3, 1 + i % 20), api_key=keys[i % 2], external_id=f"raw-{i}"
        )
        for i in range(60)
    )
    assert usage_recompute().rows_corrected == 0
    # One edit per month, so each must be found on its own.
    Job.objects.filter(external_id="raw-0").update(api_key=keys[1])  # April: same tokens, other key
    Job.objects.filter(external_id="raw-1").update(language="Tamil")  # May: same length as Hindi
    Job.objects.filter(external_id="raw-2").update(note_tokens=999)  # June
    assert usage_recompute().rows_corrected > 0
    report = usage_report(organisation=acme, start_month=dt.date(2025, 4, 1), end_month=dt.date(2025, 6, 1))
    april, may, june = report.months
    assert (report.keys["one"].jobs, report.keys["two"].jobs) == (29, 31)
    assert report.languages == {"Hindi": 59, "Tamil": 1}
    assert june.note_tokens == 19 * 200 + 999
    assert usage_recompute().rows_corrected == 0


def language_rows():
    return sorted(
        LanguageUsage.objects.values_list(
            "month", "language", "via_api", "jobs", "completed_jobs", "audio_duration_seconds"
        )
    )


def test_the_reconcile_catches_stored_rows_edited_behind_its_back(db, acme, add_jobs):
    """Each edit sits in a month of its own and leaves the month's job count unchanged where it
    can, so the reconcile must find every one of them separately."""
    keys = [api_key_create(organisation=acme, name=name).api_key for name in ("one", "two")]
    add_jobs(
        make_job(
            acme,
            created_at=at(2025, 1 + i % 6, 1 + i % 20),
            api_key=keys[i // 6 % 2],
            language=["Hindi", "Tamil"][i // 12 % 2],
            audio_duration_seconds=60 + i,
            has_lrc=bool(i % 4),
            external_id=f"stored-{i}",
        )
        for i in range(120)
    )
    usage, languages = usage_rows(), language_rows()
    month = [dt.date(2025, m, 1) for m in range(1, 7)]

    def usage_row(m, key):
        return MonthlyUsage.objects.filter(month=month[m], api_key=keys[key])

    def language_row(m, language):
        return LanguageUsage.objects.filter(month=month[m], language=language)

    usage_row(0, 0).update(completed_jobs=F("completed_jobs") + 1)
    usage_row(1, 0).update(jobs=F("jobs") - 1)  # one job moved between keys: the total holds
    usage_row(1, 1).update(jobs=F("jobs") + 1)
    language_row(2, "Hindi").update(audio_duration_seconds=F("audio_duration_seconds") + 100)
    language_row(2, "Tamil").update(audio_duration_seconds=F("audio_duration_seconds") - 100)
    language_row(3, "Tamil").update(language="Bengali")
    language_row(4, "Hindi").delete()
    LanguageUsage.objects.create(
        organisation=acme,
        month=month[5],
        language="Urdu",
        via_api=True,
        jobs=1,
        completed_jobs=0,
        audio_duration_seconds=1,
    )
    result = usage_recompute()
    assert result.rows_corrected == 9  # the Bengali row is both surplus and missing as Tamil
    assert (usage_rows(), language_rows()) == (usage, languages)
    assert usage_recompute().rows_corrected == 0


def test_counts_beyond_32_bits_are_still_reconciled(db, acme, acme_key, add_jobs, caplog):
    """PostgreSQL's checksum pass works in 32-bit counts; past them it gives way to the row diff."""
    add_jobs(make_job(acme, created_at=at(2025, 2, 1 + day), api_key=acme_key.api_key) for day in range(5))
    organisation_free_allowance_set(organisation=acme, allowance=2)
    snapshot = usage_rows()
    MonthlyUsage.objects.filter(is_free=True).update(jobs=3_000_000_000, note_tokens=2**40)
    assert usage_recompute().rows_corrected == 1
    assert usage_rows() == snapshot
    assert ("comparing row by row" in caplog.text) == (connection.vendor == "postgresql")


def test_a_scope_too_large_to_spell_out_leaves_other_organisations_flags_alone(db, add_jobs):
    """Over 900 organisations widen the SQL scope to every organisation (SQLite's parameter
    limit): the others' aggregates may be reconciled, but their flags are not theirs to fix."""
    outside = organisation_create(name="Outside", org_id="org_outside")
    add_jobs([make_job(outside, created_at=at(2025, 1, 2)) for _ in range(3)])
    Organisation.objects.filter(pk=outside.pk).update(free_job_allowance=2)  # behind the back
    many = Organisation.objects.bulk_create(
        Organisation(org_id=f"org_many{i}", name=f"Many {i}") for i in range(901)
    )
    jobs_upsert(jobs=[make_job(organisation, created_at=at(2025, 1, 1)) for organisation in many])
    refreshed = usage_refresh_organisations(organisation_ids=[organisation.pk for organisation in many])
    assert refreshed.organisations == 901 and refreshed.rows_corrected > 0
    result = usage_recompute(organisation_ids=[organisation.pk for organisation in many])
    assert (result.rows_corrected, result.free_flags_fixed) == (0, 0)
    assert not Job.objects.filter(organisation=outside, is_free=True).exists()
    assert usage_recompute(organisation_ids=[outside.pk]).free_flags_fixed == 2
