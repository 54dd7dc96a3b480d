from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.clinic_admin.permissions import IsClinicAdmin
from apps.clinic_admin.serializers import BackupConfigSerializer
from apps.tenants.services import ScheduleError, clinic_backup_config_update
from apps.users.schema import CLINIC_ADMIN_ERRORS, error_response


class BackupConfigView(APIView):
    """The clinic's automatic backup schedule."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]
    parser_classes = [JSONParser]

    @extend_schema(
        description="La programación de backups automáticos de la clínica.",
        responses={200: BackupConfigSerializer, **CLINIC_ADMIN_ERRORS},
    )
    def get(self, request):
        return Response(BackupConfigSerializer(request.tenant).data)

    @extend_schema(
        description=(
            "Cambia la programación: disabled, daily, weekly o scheduled (con next_scheduled_backup futura; "
            "una fecha sin zona es la hora local de la clínica)."
        ),
        request=BackupConfigSerializer,
        responses={
            200: BackupConfigSerializer,
            400: error_response("Programación o fecha no válidas (o errores por campo)."),
            **CLINIC_ADMIN_ERRORS,
        },
    )
    def patch(self, request):
        clinic = request.tenant
        serializer = BackupConfigSerializer(clinic, data=request.data, partial=True)
        # A date without an offset means the clinic's own local time.
        with timezone.override(clinic.time_zone):
            serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        try:
            clinic_backup_config_update(
                clinic=clinic,
                backup_schedule=values.get("backup_schedule", clinic.backup_schedule),
                next_scheduled_backup=values.get("next_scheduled_backup", clinic.next_scheduled_backup),
                explicit_date="next_scheduled_backup" in values,
            )
        except ScheduleError as error:
            raise ValidationError({"error": str(error)}) from None
        return Response(BackupConfigSerializer(clinic).data)
