from rest_framework import serializers

from apps.tenants.models import Clinic


class BackupConfigSerializer(serializers.Serializer):
    backup_schedule = serializers.ChoiceField(choices=Clinic.BackupSchedule.choices)
    last_backup_at = serializers.DateTimeField(read_only=True, allow_null=True)
    next_scheduled_backup = serializers.DateTimeField(required=False, allow_null=True)
    # Set by the platform (admin or `manage.py clinic_time_zone`): what "today" and "Sunday" mean.
    time_zone = serializers.CharField(read_only=True)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"error": "Se esperaba un objeto JSON."})
        unknown = set(data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({field: "Campo desconocido." for field in sorted(unknown)})
        read_only = {name for name in data if self.fields[name].read_only}
        if read_only:
            raise serializers.ValidationError({field: "Campo de solo lectura." for field in sorted(read_only)})
        return super().to_internal_value(data)
