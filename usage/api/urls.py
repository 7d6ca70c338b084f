"""Routes of the REST API (included at the site root by ``portal.urls``)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import ingest, jobs, views

urlpatterns = [
    path("usage", views.MonthlyUsageView.as_view(), name="api-usage-monthly"),
    path("api/v1/usage", views.AllTimeUsageView.as_view(), name="api-usage-all-time"),
    path("api/v1/jobs", jobs.JobListView.as_view(), name="api-jobs"),
    path("api/v1/ping", views.PingView.as_view(), name="api-ping"),
    path("api/v1/ingest/jobs", ingest.IngestJobsView.as_view(), name="api-ingest-jobs"),
    # external_id may hold "/": the path converter takes the rest of the path.
    path(
        "api/v1/ingest/jobs/<str:org_id>/<path:external_id>",
        ingest.IngestedJobView.as_view(),
        name="api-ingest-job",
    ),
    re_path(r"^api/v1/ingest/", ingest.IngestNotFoundView.as_view(), name="api-ingest-not-found"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file, so the CSP needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Unknown API paths answer a JSON 404 that counts as a call; "api/schema" and "api/docs"
    # without their slash are left to CommonMiddleware's redirect.
    re_path(r"^usage/", views.NotFoundView.as_view(), name="api-not-found-usage"),
    re_path(r"^api/(?!(?:schema|docs)$)", views.NotFoundView.as_view(), name="api-not-found"),
]
