from django.contrib import admin

from apps.backups.models import BackupDownload, BackupRecord


@admin.register(BackupRecord)
class BackupRecordAdmin(admin.ModelAdmin):
    list_display = ("file_name", "backup_type", "status", "format", "file_size", "created_by", "created_at")
    list_filter = ("status", "backup_type", "format")
    readonly_fields = [field.name for field in BackupRecord._meta.fields]


@admin.register(BackupDownload)
class BackupDownloadAdmin(admin.ModelAdmin):
    list_display = ("backup", "user", "downloaded_at", "ip_address")
    readonly_fields = [field.name for field in BackupDownload._meta.fields]
