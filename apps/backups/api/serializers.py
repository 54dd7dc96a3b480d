from rest_framework import serializers

from apps.backups.models import BackupRecord


class CreatedBySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()


class BackupRecordSerializer(serializers.ModelSerializer):
    created_by = CreatedBySerializer(allow_null=True)

    class Meta:
        model = BackupRecord
        fields = [
            "id",
            "file_name",
            "file_size",
            "backup_type",
            "created_at",
            "created_by",
            "status",
            "format",
            "error",
        ]
        extra_kwargs = {"error": {"help_text": "Por qué falló (vacío si no falló)."}}


class BackupCreatedSerializer(serializers.Serializer):
    message = serializers.CharField()
    backup_info = BackupRecordSerializer()


ONE_OF_MESSAGE = "Indica 'backup_id' o sube un archivo en 'file' (uno de los dos)."


class _OneSourceSerializer(serializers.Serializer):
    """A restore names one source: a backup of the clinic (JSON) or an uploaded file (multipart),
    and may carry the admin's password (re-authentication)."""

    password = serializers.CharField(
        required=False,
        write_only=True,
        trim_whitespace=False,
        help_text="La contraseña del administrador: obligatoria si no inició sesión en los últimos "
        "REAUTH_WINDOW_MINUTES minutos (5 por defecto).",
    )

    def validate(self, attrs):
        if {"backup_id", "file"} <= set(self.initial_data):
            raise serializers.ValidationError({"error": ONE_OF_MESSAGE})
        return attrs


class RestoreByIdSerializer(_OneSourceSerializer):
    backup_id = serializers.IntegerField(min_value=1, help_text="Uno de los backups de esta clínica.")


class RestoreUploadSerializer(_OneSourceSerializer):
    file = serializers.FileField(help_text="Un .sql o .json descargado de esta clínica.")


class BackupRestoreSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    backup_id = serializers.IntegerField(allow_null=True)
    backup_file_name = serializers.CharField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    previous_schema = serializers.CharField()


class RestoreListItemSerializer(serializers.Serializer):
    """One restore of the clinic, for its history of restores."""

    id = serializers.IntegerField()
    source = serializers.CharField(help_text="backup, upload o storage (recuperación ante desastres).")
    backup_id = serializers.IntegerField(allow_null=True)
    backup_file_name = serializers.CharField()
    uploaded_file_name = serializers.CharField()
    requested_by = CreatedBySerializer(allow_null=True)
    status = serializers.CharField()
    error = serializers.CharField(help_text="Por qué falló (vacío si no falló).")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    previous_schema = serializers.CharField()


class BackupJobSerializer(serializers.Serializer):
    """A job and its progress. ``bytes_total``/``rows_total`` are null until known
    (a backup learns its size as it goes; a restore knows it from the backup)."""

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="backup | restore | drill | recovery")
    status = serializers.CharField(help_text="queued | running | succeeded | failed")
    phase = serializers.CharField()
    bytes_done = serializers.IntegerField()
    bytes_total = serializers.IntegerField(allow_null=True)
    rows_done = serializers.IntegerField()
    rows_total = serializers.IntegerField(allow_null=True)
    percent = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    progress_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    requested_by = CreatedBySerializer(allow_null=True)
    schedule_slot = serializers.CharField()
    backup_info = BackupRecordSerializer(source="backup", allow_null=True)
    restore_info = BackupRestoreSerializer(source="restore", allow_null=True)
    result = serializers.JSONField()

    def get_percent(self, job) -> float | None:
        if job.status == "succeeded":
            return 100.0
        if not job.bytes_total:
            return None
        return round(min(job.bytes_done / job.bytes_total, 1.0) * 100, 1)


class JobAcceptedSerializer(serializers.Serializer):
    message = serializers.CharField()
    job = BackupJobSerializer()
