"""Staff admin: stored aggregates, read-only, next to the raw jobs."""

import pytest
from django.urls import reverse

from tests.factories import at, make_job
from usage.engine.refresh import usage_mark_stale
from usage.models import ApiCallCount, LanguageUsage, MonthlyUsage, StaleMonth

AGGREGATES = [MonthlyUsage, LanguageUsage, ApiCallCount, StaleMonth]


@pytest.fixture
def usage(acme, globex, acme_key, add_jobs):
    add_jobs(
        [
            make_job(acme, created_at=at(2025, 1, 3), api_key=acme_key.api_key, language="Tamil"),
            make_job(acme, created_at=at(2025, 2, 3)),
            make_job(globex, created_at=at(2025, 2, 4)),
        ]
    )
    ApiCallCount.objects.create(api_key=acme_key.api_key, organisation=acme, month="2025-01-01", calls=12)
    usage_mark_stale(organisation_id=globex.pk, months=None)


def url(model, name, *args):
    return reverse(f"admin:usage_{model._meta.model_name}_{name}", args=args)


@pytest.mark.parametrize("model", AGGREGATES, ids=lambda model: model.__name__)
def test_read_only_pages_render(admin_client, usage, model):
    response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200 and response.context["cl"].result_count >= 1
    row = model.objects.first()
    page = admin_client.get(url(model, "change", row.pk))
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert admin_client.get(url(model, "add")).status_code == 403
    assert admin_client.post(url(model, "delete", row.pk), {"post": "yes"}).status_code == 403


def test_monthly_usage_filters_and_links_to_the_matching_jobs(admin_client, usage):
    response = admin_client.get(url(MonthlyUsage, "changelist"), {"org_id": "org_acme", "month": "2025-01"})
    rows = list(response.context["cl"].result_list)
    assert len(rows) == 1 and rows[0].jobs == 1
    link = f"{reverse('admin:usage_job_changelist')}?org_id=org_acme&amp;month=2025-01&amp;tier=1"
    assert link in response.content.decode()
    jobs = admin_client.get(
        reverse("admin:usage_job_changelist"),
        {
            "org_id": "org_acme",
            "month": "2025-01",
            "tier": 1,
            "is_free__exact": 0,
            "api_key__id__exact": rows[0].api_key_id,
        },
    )
    assert len(jobs.context["cl"].result_list) == rows[0].jobs


def test_language_usage_search_by_org_id(admin_client, usage):
    response = admin_client.get(url(LanguageUsage, "changelist"), {"q": "org_acme", "language": "Tamil"})
    assert [(row.language, row.via_api) for row in response.context["cl"].result_list] == [("Tamil", True)]


def test_api_call_counts_are_listed(admin_client, usage):
    response = admin_client.get(url(ApiCallCount, "changelist"))
    assert [row.calls for row in response.context["cl"].result_list] == [12]
    assert b"some api key" in response.content


def test_stale_marks_show_all_months(admin_client, usage):
    response = admin_client.get(url(StaleMonth, "changelist"))
    assert b"all months" in response.content
