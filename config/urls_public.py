"""URLs of the platform's own (public schema) domain."""

from django.contrib import admin
from django.urls import path

from apps.backups.monitoring.views import backup_health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/backups/", backup_health, name="backup_health"),
]

handler400 = "config.api_errors.bad_request"
handler403 = "config.api_errors.permission_denied"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
