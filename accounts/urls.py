from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("orgs/<str:org_id>/keys/", views.api_keys, name="api-keys"),
    path("orgs/<str:org_id>/keys/<int:key_id>/revoke/", views.api_key_revoke_confirm, name="api-key-revoke"),
    path("orgs/<str:org_id>/team/", views.team, name="team"),
    path("orgs/<str:org_id>/team/<int:membership_id>/role/", views.team_role, name="team-role"),
    path("orgs/<str:org_id>/team/<int:membership_id>/remove/", views.team_remove, name="team-remove"),
    path(
        "orgs/<str:org_id>/team/invitations/<int:invitation_id>/cancel/",
        views.team_invitation_cancel,
        name="team-invitation-cancel",
    ),
    path("invitations/<str:token>/", views.invitation_accept_page, name="invitation-accept"),
]
