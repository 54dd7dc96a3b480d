"""URLs of the platform's own (public schema) domain."""

from django.contrib import admin
from django.urls import path

from apps.backups.monitoring_views import backup_health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/backups/", backup_health, name="backup_health"),
]
