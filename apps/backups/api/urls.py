from django.urls import path

from apps.backups.api.views import (
    BackupDeleteView,
    BackupHistoryListView,
    BackupJobDetailView,
    BackupJobListView,
    CreateBackupView,
    DownloadBackupView,
    RestoreBackupFromFileView,
    RestoreListView,
)

urlpatterns = [
    path("create/", CreateBackupView.as_view(), name="create_backup"),
    path("history/", BackupHistoryListView.as_view(), name="backup_history"),
    path("history/<int:pk>/download/", DownloadBackupView.as_view(), name="download_backup"),
    path("history/<int:pk>/", BackupDeleteView.as_view(), name="delete_backup"),
    path("restore/", RestoreBackupFromFileView.as_view(), name="restore_backup"),
    path("restores/", RestoreListView.as_view(), name="backup_restores"),
    path("jobs/", BackupJobListView.as_view(), name="backup_jobs"),
    path("jobs/<int:pk>/", BackupJobDetailView.as_view(), name="backup_job"),
]
