from rest_framework import serializers

from apps.backups.models import BackupRecord


class CreatedBySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()


class BackupRecordSerializer(serializers.ModelSerializer):
    created_by = CreatedBySerializer(allow_null=True)

    class Meta:
        model = BackupRecord
        fields = ["id", "file_name", "file_size", "backup_type", "created_at", "created_by", "status", "format"]


class BackupCreatedSerializer(serializers.Serializer):
    message = serializers.CharField()
    backup_info = BackupRecordSerializer()
