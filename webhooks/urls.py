from django.urls import path

from . import views

urlpatterns = [
    path("orgs/<str:org_id>/webhooks/", views.webhooks_page, name="webhooks"),
    path("orgs/<str:org_id>/webhooks/<int:endpoint_id>/edit/", views.endpoint_edit, name="webhook-edit"),
    path(
        "orgs/<str:org_id>/webhooks/<int:endpoint_id>/<str:action>/",
        views.endpoint_action,
        name="webhook-action",
    ),
    path("orgs/<str:org_id>/webhooks/thresholds/", views.threshold_add, name="webhook-threshold-add"),
    path(
        "orgs/<str:org_id>/webhooks/thresholds/<int:threshold_id>/remove/",
        views.threshold_remove,
        name="webhook-threshold-remove",
    ),
    path(
        "orgs/<str:org_id>/webhooks/deliveries/<int:delivery_id>/redeliver/",
        views.delivery_redeliver_view,
        name="webhook-redeliver",
    ),
]
