"""Pieces of the OpenAPI schema every clinic endpoint shares: the bearer JWT
(described as simplejwt's own: the clinic binding is inside the token) and the
error bodies."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ClinicJWTScheme(SimpleJWTScheme):
    target_class = "apps.users.authentication.ClinicJWTAuthentication"
    name = "clinicJWT"


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Qué pasó, en español.")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Qué pasó, en español (errores de autenticación y permisos).")


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


def _detail_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(DetailSerializer, description=description)


CLINIC_ADMIN_ERRORS = {
    401: _detail_response("Sin token, o con un token de otra clínica, caducado o anterior a una restauración."),
    403: _detail_response("El usuario no es administrador de esta clínica."),
}
