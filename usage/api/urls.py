"""Routes of the REST API (included at the site root by ``portal.urls``)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

urlpatterns = [
    path("usage", views.MonthlyUsageView.as_view(), name="api-usage-monthly"),
    path("api/v1/usage", views.AllTimeUsageView.as_view(), name="api-usage-all-time"),
    path("api/v1/ping", views.PingView.as_view(), name="api-ping"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file, so the CSP needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Unknown API paths answer a JSON 404 that counts as a call; "api/schema" and "api/docs"
    # without their slash are left to CommonMiddleware's redirect.
    re_path(r"^usage/", views.NotFoundView.as_view(), name="api-not-found-usage"),
    re_path(r"^api/(?!(?:schema|docs)$)", views.NotFoundView.as_view(), name="api-not-found"),
]
