"""One place where service errors become JSON API errors: ``{"error": "..."}``."""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.backups.errors import BackupError

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    if isinstance(exc, BackupError):
        if exc.status_code >= 500:
            logger.error("Error de backup en %s: %s", context["request"].path, exc)
        # Server faults may carry internal detail: the log has it, the clinic admin a plain message.
        return Response({"error": exc.public_message or str(exc)}, status=exc.status_code)
    if isinstance(exc, ObjectDoesNotExist):
        return Response({"error": "No encontrado."}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, ImproperlyConfigured):
        logger.error("Configuración incompleta: %s", exc)
        return Response(
            {"error": "El sistema de backups no está bien configurado; avisa al operador de la plataforma."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return drf_exception_handler(exc, context)
