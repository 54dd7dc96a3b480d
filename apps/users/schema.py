"""Pieces of the OpenAPI schema every clinic endpoint shares: the bearer JWT
(described as simplejwt's own: the clinic binding is inside the token) and the
error bodies."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ClinicJWTScheme(SimpleJWTScheme):
    target_class = "apps.users.authentication.ClinicJWTAuthentication"
    name = "clinicJWT"


# The one error body of the API (config/api_errors.py).
class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Qué pasó, en español.")
    fields = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="Solo en datos rechazados campo a campo: campo → mensaje.",
    )

    class Meta:
        ref_name = "Error"


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


# Every authenticated endpoint can answer these (and 405/406/415 for a wrong method or media type).
AUTH_ERRORS = {
    401: error_response("Sin token, o con un token de otra clínica, caducado o anterior a una restauración."),
}
CLINIC_ADMIN_ERRORS = {
    **AUTH_ERRORS,
    403: error_response("El usuario no es administrador de esta clínica."),
}
