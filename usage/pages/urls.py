"""URLs of the customer usage pages (the REST API has its own module)."""

from django.urls import path

from . import jobs, views

urlpatterns = [
    path("orgs/<str:org_id>/usage/", views.usage_page, name="usage-page"),
    path("orgs/<str:org_id>/usage.csv", views.usage_csv_download, name="usage-csv"),
    path("orgs/<str:org_id>/jobs/", jobs.jobs_page, name="jobs-page"),
    path("orgs/<str:org_id>/jobs.csv", jobs.jobs_csv_download, name="jobs-csv"),
]
