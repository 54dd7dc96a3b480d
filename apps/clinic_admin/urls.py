from django.urls import path

from apps.clinic_admin.views import BackupConfigView

urlpatterns = [
    path("config/backup/", BackupConfigView.as_view(), name="backup_config"),
]
