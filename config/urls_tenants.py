"""URLs served on a clinic's own domain (``<schema>.localhost`` in the demo)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("apps.users.urls")),
    path("api/admin/", include("apps.clinic_admin.urls")),
    path("api/backups/", include("apps.backups.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]
