"""Staff admin: jobs (filters, exact search, constant query count, edits that keep usage fresh)."""

import pytest
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.services import api_key_create
from tests.factories import at, make_job
from usage.admin.base import EstimatedCountPaginator
from usage.admin.jobs import JobAdmin
from usage.models import Job, LanguageUsage, MonthlyUsage

CHANGELIST = reverse("admin:usage_job_changelist")
ADD = reverse("admin:usage_job_add")


def change_url(job):
    return reverse("admin:usage_job_change", args=[job.pk])


def listed(client, **params):
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return sorted(job.external_id for job in response.context["cl"].result_list)


def month_jobs(organisation, month):
    return sum(
        MonthlyUsage.objects.filter(organisation=organisation, month=month).values_list("jobs", flat=True)
    )


@pytest.fixture
def jobs(acme, globex, acme_key, add_jobs):
    """Four Acme jobs (two months, web and API, two languages, two statuses) and one Globex job."""
    add_jobs(
        [
            make_job(acme, created_at=at(2025, 1, 10), external_id="a-jan-web", language="Hindi"),
            make_job(
                acme,
                created_at=at(2025, 1, 31, 23, 59, 59),
                external_id="a-jan-api",
                api_key=acme_key.api_key,
                language="Tamil",
                status="failed",
            ),
            make_job(acme, created_at=at(2025, 2, 1, 0, 0, 0), external_id="a-feb-web", language="Hindi"),
            make_job(
                acme,
                created_at=at(2025, 2, 3),
                external_id="a-feb-api",
                api_key=acme_key.api_key,
                language="Hindi",
            ),
            make_job(globex, created_at=at(2025, 2, 4), external_id="g-feb", language="Bengali"),
        ]
    )
    return {job.external_id: job for job in Job.objects.all()}


def test_changelist_renders_newest_first(admin_client, jobs):
    response = admin_client.get(CHANGELIST)
    assert [job.external_id for job in response.context["cl"].result_list] == [
        "g-feb",
        "a-feb-api",
        "a-feb-web",
        "a-jan-api",
        "a-jan-web",
    ]
    content = response.content.decode()
    assert "org_acme" in content and "some api key" in content


def test_add_and_change_forms_render_with_derived_fields_read_only(admin_client, jobs):
    assert admin_client.get(ADD).status_code == 200
    response = admin_client.get(change_url(jobs["a-jan-api"]))
    assert response.status_code == 200
    fields = set(response.context["adminform"].form.fields)
    assert not {"month", "tier", "is_free", "source", "organisation"} & fields
    assert {"external_id", "created_at", "api_key", "status"} <= fields


def test_no_date_hierarchy_and_no_full_count():
    assert JobAdmin.date_hierarchy is None
    assert JobAdmin.show_full_result_count is False
    assert JobAdmin.paginator is EstimatedCountPaginator
    assert JobAdmin.show_facets is admin.ShowFacets.NEVER


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "failed"}, ["a-jan-api"]),
        ({"language": "Hindi"}, ["a-feb-api", "a-feb-web", "a-jan-web"]),
        ({"source__exact": "api"}, ["a-feb-api", "a-jan-api"]),
        ({"month": "2025-01"}, ["a-jan-api", "a-jan-web"]),
        ({"month": "2025-02", "org_id": "org_acme"}, ["a-feb-api", "a-feb-web"]),
        ({"org_id": "org_globex"}, ["g-feb"]),
        ({"org_id": "org_nobody"}, []),
        ({"q": "a-feb-web"}, ["a-feb-web"]),
        ({"q": "org_globex"}, ["g-feb"]),
        ({"q": "a-feb"}, []),  # exact, not a substring scan
    ],
)
def test_filters_and_search(admin_client, jobs, params, expected):
    assert listed(admin_client, **params) == expected


def test_a_bad_month_is_refused_not_crashed(admin_client, jobs):
    response = admin_client.get(CHANGELIST, {"month": "2025-13"})
    assert response.status_code == 302 and "e=1" in response.url


def test_filter_choices_come_from_aggregates_not_a_scan_of_jobs(admin_client, jobs):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    specs = {spec.title: spec for spec in response.context["cl"].filter_specs}
    assert [value for value, _ in specs["language"].lookup_choices] == ["Bengali", "Hindi", "Tamil"]
    assert [value for value, _ in specs["month"].lookup_choices][-2:] == ["2025-02", "2025-01"]
    assert "organisation" not in specs or not specs["organisation"].has_output()
    job_table = Job._meta.db_table
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper() and job_table in q["sql"]]
    assert LanguageUsage.objects.exists()


def test_query_count_does_not_grow_with_rows(admin_client, django_assert_num_queries, acme, globex, add_jobs):
    keys = [api_key_create(organisation=org, name=f"key {org.org_id}").api_key for org in (acme, globex)]

    def add(count, start):
        add_jobs(
            make_job(
                (acme, globex)[index % 2],
                created_at=at(2025, 1 + index % 3, 1 + index % 27),
                api_key=keys[index % 2] if index % 3 else None,
                language=("Hindi", "Tamil", "Urdu")[index % 3],
            )
            for index in range(start, start + count)
        )

    add(5, 0)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(CHANGELIST).status_code == 200
    add(45, 5)
    with django_assert_num_queries(len(few.captured_queries)):
        response = admin_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 50
    with CaptureQueriesContext(connection) as filtered_few:
        admin_client.get(CHANGELIST, {"org_id": "org_acme", "status__exact": "completed"})
    add(50, 50)
    with django_assert_num_queries(len(filtered_few.captured_queries)):
        admin_client.get(CHANGELIST, {"org_id": "org_acme", "status__exact": "completed"})


def test_moving_a_job_to_another_month_refreshes_both_months(admin_client, admin_form_data, jobs, acme):
    job = jobs["a-jan-web"]
    data = admin_form_data(admin_client.get(change_url(job))) | {
        "created_at_0": "2025-02-20",
        "created_at_1": "08:00:00",
    }
    response = admin_client.post(change_url(job), data)
    assert response.status_code == 302
    job.refresh_from_db()
    assert str(job.month) == "2025-02-01"
    assert month_jobs(acme, "2025-01-01") == 1
    assert month_jobs(acme, "2025-02-01") == 3


def test_adding_a_job_derives_month_and_source(admin_client, acme, acme_key):
    data = {
        "organisation": acme.pk,
        "external_id": "by-hand",
        "api_key": acme_key.api_key.pk,
        "created_at_0": "2025-03-05",
        "created_at_1": "10:00:00",
        "status": "completed",
        "language": "Hindi",
        "audio_duration_seconds": "30",
        "has_transcript": "on",
        "transcription_tokens": "10",
        "note_tokens": "0",
    }
    response = admin_client.post(ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    job = Job.objects.get(external_id="by-hand")
    assert job.source == Job.Source.API and str(job.month) == "2025-03-01"
    assert month_jobs(acme, "2025-03-01") == 1


def test_a_key_of_another_organisation_is_a_form_error(admin_client, admin_form_data, jobs, globex):
    other_key = api_key_create(organisation=globex, name="globex key").api_key
    job = jobs["a-jan-web"]
    data = admin_form_data(admin_client.get(change_url(job))) | {"api_key": str(other_key.pk)}
    response = admin_client.post(change_url(job), data)
    assert response.status_code == 200
    assert "api_key" in response.context["adminform"].form.errors


def test_a_duplicate_external_id_is_a_form_error(admin_client, admin_form_data, jobs):
    job = jobs["a-jan-web"]
    data = admin_form_data(admin_client.get(change_url(job))) | {"external_id": "a-feb-web"}
    response = admin_client.post(change_url(job), data)
    assert response.status_code == 200
    assert "external_id" in response.context["adminform"].form.errors


def test_deleting_a_job_refreshes_its_month(admin_client, jobs, acme):
    job = jobs["a-feb-web"]
    response = admin_client.post(reverse("admin:usage_job_delete", args=[job.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert month_jobs(acme, "2025-02-01") == 1
    assert LogEntry.objects.filter(object_id=str(job.pk), action_flag=DELETION).exists()


def test_bulk_delete_refreshes_every_month_and_logs(admin_client, jobs, acme, globex):
    selected = [jobs["a-jan-web"], jobs["a-feb-api"], jobs["g-feb"]]
    data = {"action": "delete_selected", "_selected_action": [job.pk for job in selected], "post": "yes"}
    assert admin_client.post(CHANGELIST, data).status_code == 302
    assert month_jobs(acme, "2025-01-01") == 1
    assert month_jobs(acme, "2025-02-01") == 1
    assert month_jobs(globex, "2025-02-01") == 0
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 3


def test_edits_free_jobs_follow_the_allowance(admin_client, jobs, acme):
    from usage.services import organisation_free_allowance_set

    organisation_free_allowance_set(organisation=acme, allowance=1)
    assert Job.objects.get(is_free=True).external_id == "a-jan-web"
    admin_client.post(reverse("admin:usage_job_delete", args=[jobs["a-jan-web"].pk]), {"post": "yes"})
    assert Job.objects.get(is_free=True).external_id == "a-jan-api"


on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="estimates are read from PostgreSQL's statistics"
)


def analyze_jobs():
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")


@on_postgresql
def test_big_results_are_estimated_on_postgresql(jobs, monkeypatch):
    analyze_jobs()
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 0)
    paginator = EstimatedCountPaginator(Job.objects.order_by("-created_at", "-id"), 100)
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 5
    assert paginator.is_estimate
    assert "pg_class" in queries[0]["sql"] and "COUNT" not in queries[0]["sql"].upper()
    filtered = EstimatedCountPaginator(Job.objects.filter(language="Hindi").order_by("pk"), 100)
    with CaptureQueriesContext(connection) as queries:
        assert filtered.count >= 1
    assert filtered.is_estimate and queries[0]["sql"].startswith("EXPLAIN")


@on_postgresql
def test_small_results_are_counted_exactly_on_postgresql(jobs):
    analyze_jobs()
    paginator = EstimatedCountPaginator(Job.objects.filter(language="Hindi").order_by("pk"), 100)
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 3
    assert not paginator.is_estimate and "COUNT" in queries[-1]["sql"].upper()
    assert EstimatedCountPaginator(Job.objects.none(), 100).count == 0


@on_postgresql
def test_the_list_says_about_for_an_estimate_and_corrects_it_on_the_last_page(
    admin_client, jobs, monkeypatch
):
    analyze_jobs()
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 0)
    monkeypatch.setattr(JobAdmin, "list_per_page", 2)
    first = admin_client.get(CHANGELIST)
    assert first.context["cl"].paginator.is_estimate
    assert b"about 5 jobs" in first.content and b"about 5 results" in first.content
    last = admin_client.get(CHANGELIST, {"p": 3})
    assert last.context["cl"].result_count == 5 and b"about" not in last.content
    monkeypatch.setattr(JobAdmin, "list_per_page", 100)
    whole = admin_client.get(CHANGELIST)
    assert whole.context["cl"].result_count == 5 and not whole.context["cl"].multi_page


def test_small_tables_are_counted_exactly(jobs):
    paginator = EstimatedCountPaginator(Job.objects.order_by("-pk"), 100)
    assert paginator.count == 5


def test_too_many_jobs_are_not_deleted_from_the_list(admin_client, jobs, monkeypatch):
    import usage.admin.jobs

    monkeypatch.setattr(usage.admin.jobs, "BULK_DELETE_LIMIT", 2)
    selected = [job.pk for job in list(jobs.values())[:3]]
    data = {"action": "delete_selected", "_selected_action": selected, "post": "yes"}
    response = admin_client.post(CHANGELIST, data)
    assert b"3 jobs are selected; delete at most 2 at a time here." in response.content
    assert Job.objects.count() == 5
