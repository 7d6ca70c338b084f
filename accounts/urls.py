from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("orgs/<str:org_id>/keys/", views.api_keys, name="api-keys"),
    path("orgs/<str:org_id>/keys/<int:key_id>/revoke/", views.api_key_revoke_confirm, name="api-key-revoke"),
]
