from drf_spectacular.utils import extend_schema
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from apps.users.schema import error_response
from apps.users.serializers import ClinicTokenObtainPairSerializer, ClinicTokenRefreshSerializer


class TokenObtainApi(TokenObtainPairView):
    """Email and password of a user of this clinic → access and refresh tokens for this clinic only."""

    serializer_class = ClinicTokenObtainPairSerializer

    @extend_schema(
        description="Correo y contraseña de un usuario de esta clínica → tokens de acceso y de refresco, "
        "válidos solo en esta clínica.",
        responses={
            200: ClinicTokenObtainPairSerializer,
            400: error_response("Falta el correo o la contraseña, o el cuerpo no es JSON válido."),
            401: error_response("Correo o contraseña incorrectos, o la cuenta no está activa."),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class TokenRefreshApi(TokenRefreshView):
    serializer_class = ClinicTokenRefreshSerializer

    @extend_schema(
        description="Un token de refresco válido de esta clínica → un token de acceso nuevo.",
        responses={
            200: TokenRefreshSerializer,
            400: error_response("Falta el token de refresco, o el cuerpo no es JSON válido."),
            401: error_response(
                "Token de refresco no válido, caducado, de otra clínica o anterior a una restauración."
            ),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
