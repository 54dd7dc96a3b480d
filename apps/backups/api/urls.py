from django.urls import path

from apps.backups.api.views import (
    BackupHistoryListView,
    CreateBackupView,
    DownloadBackupView,
    RestoreBackupFromFileView,
)

urlpatterns = [
    path("create/", CreateBackupView.as_view(), name="create_backup"),
    path("history/", BackupHistoryListView.as_view(), name="backup_history"),
    path("history/<int:pk>/download/", DownloadBackupView.as_view(), name="download_backup"),
    path("restore/", RestoreBackupFromFileView.as_view(), name="restore_backup"),
]
