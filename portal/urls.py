from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("accounts.urls")),
    path("", include("usage.pages.urls")),
    path("", include("webhooks.urls")),
    path("", include("usage.api.urls")),
]
