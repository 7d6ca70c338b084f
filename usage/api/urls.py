"""Routes of the REST API (included at the site root by ``portal.urls``)."""

from django.urls import path, re_path, register_converter
from django.urls.converters import PathConverter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import ingest, jobs, views


class AnyTextConverter(PathConverter):
    """The rest of the path, whatever it holds: an external id may contain "/" and even a line
    break (percent-encoded), which Django's ``path`` converter (``.+``) does not cross."""

    regex = r"[\s\S]+"


register_converter(AnyTextConverter, "anytext")

urlpatterns = [
    path("usage", views.MonthlyUsageView.as_view(), name="api-usage-monthly"),
    path("api/v1/usage", views.AllTimeUsageView.as_view(), name="api-usage-all-time"),
    path("api/v1/jobs", jobs.JobListView.as_view(), name="api-jobs"),
    path("api/v1/ping", views.PingView.as_view(), name="api-ping"),
    path("api/v1/ingest/jobs", ingest.IngestJobsView.as_view(), name="api-ingest-jobs"),
    # external_id may hold "/": the converter takes the rest of the path.
    path(
        "api/v1/ingest/jobs/<str:org_id>/<anytext:external_id>",
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
