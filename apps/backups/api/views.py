"""The backup API of a clinic (on the clinic's own domain). Thin: parse, call
one service, render. Errors are rendered by ``config.api_errors``."""

from __future__ import annotations

import logging

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.backups.api.responses import backup_download_response
from apps.backups.api.serializers import (
    BackupCreatedSerializer,
    BackupJobSerializer,
    BackupRecordSerializer,
    JobAcceptedSerializer,
    RestoreByIdSerializer,
    RestoreListItemSerializer,
    RestoreUploadSerializer,
)
from apps.backups.api.uploads import upload_space_guard
from apps.backups.jobs.services import backup_job_start, jobs_recent, restore_job_start
from apps.backups.models import BackupJob, BackupRecord, BackupRestore
from apps.backups.restore.swap import upload_backup_match, upload_size_check
from apps.backups.services import backup_create, backup_get_available, manual_backup_delete
from apps.backups.storage import get_backup_storage
from apps.clinic_admin.permissions import IsClinicAdmin
from apps.users.reauth import RecentAuthentication, reauthentication_ensure
from apps.users.schema import CLINIC_ADMIN_ERRORS, error_response
from apps.users.serializers import ReauthRequestSerializer

logger = logging.getLogger(__name__)
REAUTH_403 = (
    "No es administrador, o falta re-autenticación: la contraseña en 'password' o un inicio de sesión "
    "de los últimos REAUTH_WINDOW_MINUTES minutos (5 por defecto)."
)
REAUTH_429 = "Demasiadas contraseñas incorrectas: cuenta o dirección bloqueada un tiempo."
FILE_RESPONSE = OpenApiResponse(OpenApiTypes.BINARY, description="El archivo .sql o .json del backup.")
JOB_ACCEPTED = OpenApiResponse(
    JobAcceptedSerializer,
    description="En cola: la tarea, y su URL (GET /api/backups/jobs/<id>/) en la cabecera Location.",
)
RESTORE_QUEUED_MESSAGE = (
    "Restauración en cola. Sigue su progreso en la URL de la cabecera Location. Al terminar, las sesiones "
    "anteriores se cierran: vuelve a iniciar sesión para ver el resultado."
)
BACKUP_QUEUED_MESSAGE = "Backup en cola. Sigue su progreso en la URL de la cabecera Location."
TRUE_VALUES = {"1", "true", "yes", "si", "sí"}
FALSE_VALUES = {"0", "false", "no"}


def _flag(request, name: str) -> bool:
    """A true/false query parameter; absent is false, anything else is a 400 naming it."""
    value = request.query_params.get(name)
    if value is None:
        return False
    value = value.strip().lower()
    if value not in TRUE_VALUES | FALSE_VALUES:
        raise ValidationError({name: f"Usa {name}=true o {name}=false."})
    return value in TRUE_VALUES


def _job_accepted(request, job: BackupJob, message: str) -> Response:
    """202 with the job, and its URL in Location."""
    location = request.build_absolute_uri(reverse("backup_job", args=[job.pk]))
    body = {"message": message, "job": BackupJobSerializer(job).data}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


def _request_data(request):
    """The parsed body (a full temporary folder: see ``upload_space_guard``)."""
    with upload_space_guard(request):
        return request.data


class CreateBackupView(APIView):
    """Make a manual backup of this clinic now."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]
    parser_classes = [JSONParser]

    @extend_schema(
        description="Hace ahora un backup manual de la clínica; con download=true responde con el archivo.",
        request=None,
        parameters=[
            OpenApiParameter("download", bool, description="true: responder con el archivo del backup."),
            OpenApiParameter(
                "async",
                bool,
                description="true: hacerlo en segundo plano; responde 202 con la tarea y su URL en Location.",
            ),
        ],
        responses={
            201: BackupCreatedSerializer,
            202: JOB_ACCEPTED,
            (200, "application/sql"): FILE_RESPONSE,
            400: error_response(
                "Backup demasiado grande, o la petición lleva cuerpo, un download=/async= desconocido o ambos."
            ),
            **CLINIC_ADMIN_ERRORS,
            409: error_response("La clínica está ocupada: hay una restauración en curso."),
            500: error_response("El backup falló; queda en el historial como fallido."),
            503: error_response("El almacenamiento o la cola de tareas no están disponibles."),
        },
    )
    def post(self, request):
        # Checked before any work: malformed JSON is a 400, another media type a 415.
        if request.data:
            raise ValidationError({"error": "Esta petición no lleva datos en el cuerpo."})
        download = _flag(request, "download")
        if _flag(request, "async"):
            if download:
                raise ValidationError({"error": "async=true no admite download=true: descarga el backup al terminar."})
            job = backup_job_start(clinic=request.tenant, user=request.user, max_size=settings.MAX_BACKUP_SIZE)
            return _job_accepted(request, job, BACKUP_QUEUED_MESSAGE)
        record = backup_create(
            clinic=request.tenant, backup_type="manual", user=request.user, max_size=settings.MAX_BACKUP_SIZE
        )
        if download:
            return backup_download_response(request, record)
        body = {
            "message": f"Backup creado y subido a {get_backup_storage().label} exitosamente",
            "backup_info": BackupRecordSerializer(record).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class BackupHistoryListView(APIView):
    """This clinic's backups, newest first."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]

    @extend_schema(
        description="Los backups de la clínica, del más reciente al más antiguo.",
        responses={200: BackupRecordSerializer(many=True), **CLINIC_ADMIN_ERRORS},
    )
    def get(self, request):
        records = BackupRecord.objects.select_related("created_by")
        return Response(BackupRecordSerializer(records, many=True).data)


class DownloadBackupView(APIView):
    """The plain .sql/.json of one of this clinic's backups, streamed."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]

    @extend_schema(
        description="El .sql o .json de uno de los backups de la clínica, comprobado con sus checksums.",
        responses={
            (200, "application/sql"): FILE_RESPONSE,
            **CLINIC_ADMIN_ERRORS,
            404: error_response("No hay un backup con ese id en esta clínica."),
            409: error_response("El backup no se completó y no se puede descargar."),
            500: error_response("El objeto almacenado no coincide con su checksum."),
            503: error_response("El almacenamiento no está disponible."),
        },
    )
    def get(self, request, pk: int):
        return backup_download_response(request, backup_get_available(backup_id=pk))


class BackupDeleteView(APIView):
    """Delete one of this clinic's manual backups: stored object, manifest and record.
    Needs re-authentication: ``{"password": ...}`` in the body or a recent sign-in."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin, RecentAuthentication]

    @extend_schema(
        request=ReauthRequestSerializer,
        responses={
            204: OpenApiResponse(description="Eliminado: el objeto, su manifiesto y el registro."),
            **CLINIC_ADMIN_ERRORS,
            403: error_response(REAUTH_403),
            429: error_response(REAUTH_429),
            404: error_response("No hay un backup con ese id en esta clínica."),
            409: error_response(
                "No se puede eliminar: es automático, está en curso o es el backup correcto más reciente."
            ),
            503: error_response("El almacenamiento no está disponible; no se eliminó el registro."),
        },
    )
    def delete(self, request, pk: int):
        manual_backup_delete(clinic=request.tenant, backup_id=pk, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RestoreListView(APIView):
    """This clinic's restores, newest first: who, when, from what, result."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]

    @extend_schema(responses={200: RestoreListItemSerializer(many=True), **CLINIC_ADMIN_ERRORS})
    def get(self, request):
        restores = BackupRestore.objects.select_related("requested_by")
        return Response(RestoreListItemSerializer(restores, many=True).data)


class RestoreBackupFromFileView(APIView):
    """Replace this clinic's data with one of its backups (``backup_id``) or with
    an uploaded .sql/.json that this system produced for this clinic, as a job:
    202 with the job and its URL in Location (a large clinic's restore outlasts
    any HTTP time-out). The checks (the backup exists and succeeded; the upload is
    one of the clinic's backups) are made here, before anything is queued."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(
        description=(
            "Reemplaza los datos de la clínica por uno de sus backups (JSON con backup_id) o por un archivo "
            "subido (multipart, campo file) que este sistema hizo para esta clínica. El estado anterior se "
            "conserva; las sesiones abiertas se cierran."
        ),
        request={"application/json": RestoreByIdSerializer, "multipart/form-data": RestoreUploadSerializer},
        responses={
            202: JOB_ACCEPTED,
            400: error_response("Archivo ajeno a esta clínica o a este sistema, o demasiado grande."),
            **CLINIC_ADMIN_ERRORS,
            403: error_response(REAUTH_403),
            404: error_response("No hay un backup con ese id en esta clínica."),
            409: error_response("El backup no se completó, o la clínica está ocupada con otro backup o restauración."),
            503: error_response("La cola de tareas no está disponible."),
            507: error_response("El servidor no tiene espacio para recibir el archivo."),
            429: error_response(REAUTH_429),
        },
    )
    def post(self, request):
        upload_size_check(request.META.get("CONTENT_LENGTH"))  # before the body is read
        upload = request.content_type.startswith("multipart/")
        serializer = (RestoreUploadSerializer if upload else RestoreByIdSerializer)(data=_request_data(request))
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        # Re-authentication first: nothing of the upload is read nor anything queued without it.
        reauthentication_ensure(request, password=values.get("password"))
        uploaded = {}
        if upload:
            record, sha256 = upload_backup_match(clinic=request.tenant, uploaded_file=values["file"])
            uploaded = {"uploaded_file_name": values["file"].name or "", "uploaded_sha256": sha256}
        else:
            record = backup_get_available(backup_id=values["backup_id"])
        job = restore_job_start(clinic=request.tenant, record=record, user=request.user, **uploaded)
        logger.info("Restauración pedida por %s desde %s (tarea %s)", request.user.email, record.file_name, job.pk)
        return _job_accepted(request, job, RESTORE_QUEUED_MESSAGE)


class BackupJobListView(APIView):
    """This clinic's recent jobs (backups, restores...), newest first."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]

    @extend_schema(responses={200: BackupJobSerializer(many=True), **CLINIC_ADMIN_ERRORS})
    def get(self, request):
        return Response(BackupJobSerializer(jobs_recent(), many=True).data)


class BackupJobDetailView(APIView):
    """One of this clinic's jobs: status, progress, error, result."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]

    @extend_schema(
        responses={
            200: BackupJobSerializer,
            **CLINIC_ADMIN_ERRORS,
            404: error_response("No hay una tarea con ese id en esta clínica."),
        }
    )
    def get(self, request, pk: int):
        job = BackupJob.objects.select_related("requested_by", "backup__created_by", "restore").get(pk=pk)
        return Response(BackupJobSerializer(job).data)
