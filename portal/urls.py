from django.contrib import admin
from django.urls import include, path

from accounts.views import LimitedPasswordResetView
from portal.views import healthz, readyz

urlpatterns = [
    # First: the API's routes are the hot path, and its paths (/usage, /usage/…, /api/…) are
    # nobody else's, so trying them first changes no answer and spares every API request the
    # walk through the pages' routes.
    path("", include("usage.api.urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # Before Django's own route of the same name: the reset form with a limit on mails sent.
    path("accounts/password_reset/", LimitedPasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("accounts.urls")),
    path("", include("usage.pages.urls")),
    path("", include("webhooks.urls")),
]
