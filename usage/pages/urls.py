"""URLs of the customer usage pages (the REST API has its own module)."""

from django.urls import path

from . import views

urlpatterns = [
    path("orgs/<str:org_id>/usage/", views.usage_page, name="usage-page"),
    path("orgs/<str:org_id>/usage.csv", views.usage_csv_download, name="usage-csv"),
]
