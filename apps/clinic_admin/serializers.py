from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.backups.scheduling.selectors import clinic_next_backup_at
from apps.tenants.models import Clinic


class BackupConfigSerializer(serializers.Serializer):
    backup_schedule = serializers.ChoiceField(choices=Clinic.BackupSchedule.choices)
    last_backup_at = serializers.DateTimeField(read_only=True, allow_null=True)
    next_scheduled_backup = serializers.DateTimeField(required=False, allow_null=True)
    # Set by the platform (admin or `manage.py clinic_time_zone`): what "today" and "Sunday" mean.
    time_zone = serializers.CharField(read_only=True)
    # How the automatic backups are doing (read-only): what the clinic's page shows.
    next_run_at = serializers.SerializerMethodField(
        help_text="Cuándo se intentará el próximo backup automático (null si no hay programación)."
    )
    consecutive_failures = serializers.IntegerField(
        source="backup_failures", read_only=True, help_text="Backups automáticos fallidos seguidos (0 tras un éxito)."
    )
    last_error = serializers.CharField(
        source="backup_last_error", read_only=True, help_text="Error del último backup automático fallido."
    )
    next_retry_at = serializers.DateTimeField(
        source="backup_retry_at",
        read_only=True,
        allow_null=True,
        help_text="Tras un fallo: no se reintenta antes de esta hora.",
    )

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run_at(self, clinic):
        when = clinic_next_backup_at(clinic=clinic, now=timezone.now())
        return serializers.DateTimeField().to_representation(when) if when else None

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
