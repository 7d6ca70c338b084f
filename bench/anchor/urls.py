"""The anchor's only route."""

from django.urls import path

from .views import AnchorView

urlpatterns = [path("anchor", AnchorView.as_view())]
