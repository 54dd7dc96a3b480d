"""Signing in and out of a clinic: tokens, logout, the sign-in records."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from apps.clinic_admin.permissions import IsClinicAdmin
from apps.users.authentication import ensure_token_belongs_to_current_clinic
from apps.users.schema import CLINIC_ADMIN_ERRORS, error_response
from apps.users.serializers import (
    ClinicTokenObtainPairSerializer,
    ClinicTokenRefreshSerializer,
    LogoutSerializer,
    MessageSerializer,
    SignInSerializer,
    TokenPairSerializer,
)
from apps.users.services import user_tokens_revoke
from apps.users.sign_ins import lockout_message, lockout_seconds, sign_ins_recent


class TokenObtainApi(TokenObtainPairView):
    """Email and password of a user of this clinic → access and refresh tokens for this clinic only.

    After ``AUTH_LOCKOUT_FAILURES`` failures for one account or from one address,
    429 for a cool-down that doubles with each lockout."""

    serializer_class = ClinicTokenObtainPairSerializer

    @extend_schema(
        description="Correo y contraseña de un usuario de esta clínica → tokens de acceso y de refresco, "
        "válidos solo en esta clínica.",
        responses={
            200: TokenPairSerializer,
            400: error_response("Falta el correo o la contraseña, o el cuerpo no es JSON válido."),
            401: error_response("Correo o contraseña incorrectos, o la cuenta no está activa."),
            429: error_response("Demasiados intentos fallidos: espera el tiempo indicado (cabecera Retry-After)."),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            if not getattr(request, "axes_locked_out", False):
                raise
        # django-axes flags the DRF request, which its middleware never sees: answer here.
        return Response(
            {"error": lockout_message(request)},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(lockout_seconds(request))},
        )


class TokenRefreshApi(TokenRefreshView):
    """A refresh token → a new access token and a new refresh token; the one sent
    is revoked (rotation), so a copy of it gets 401."""

    serializer_class = ClinicTokenRefreshSerializer

    @extend_schema(
        description="Un token de refresco válido de esta clínica → un token de acceso nuevo y un token de "
        "refresco nuevo (el enviado queda revocado).",
        responses={
            200: TokenPairSerializer,
            400: error_response("Falta el token de refresco, o el cuerpo no es JSON válido."),
            401: error_response(
                "Token de refresco no válido, caducado, revocado, de otra clínica o anterior a una restauración."
            ),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class LogoutApi(APIView):
    """Revoke a refresh token (and, with ``everywhere``, every one of its user's).
    The refresh token is the proof: no access token is needed."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        description="Revoca un token de refresco de esta clínica (con everywhere, todas las sesiones de su "
        "usuario). El token de refresco es la prueba: no hace falta token de acceso.",
        request=LogoutSerializer,
        responses={
            200: MessageSerializer,
            400: error_response("Falta el refresh token."),
            401: error_response("Token no válido, caducado, ya revocado o de otra clínica."),
        },
    )
    def post(self, request):
        serializer = LogoutSerializer(data=request.data)
        if not serializer.is_valid():
            return Response({"error": "Envía el refresh token en 'refresh'."}, status=status.HTTP_400_BAD_REQUEST)
        try:
            refresh = RefreshToken(serializer.validated_data["refresh"])
            ensure_token_belongs_to_current_clinic(refresh)
        except (TokenError, InvalidToken):
            return Response(
                {"error": "El token no es válido, ya caducó o ya se revocó."}, status=status.HTTP_401_UNAUTHORIZED
            )
        refresh.blacklist()
        if serializer.validated_data["everywhere"]:
            user_tokens_revoke(user_id=refresh["user_id"])
            return Response({"message": "Se cerraron todas tus sesiones en esta clínica."})
        return Response({"message": "Sesión cerrada."})


class SignInListApi(APIView):
    """This clinic's latest sign-ins, failed and successful (who, when, from where)."""

    permission_classes = [permissions.IsAuthenticated, IsClinicAdmin]

    @extend_schema(
        description="Los últimos inicios de sesión de esta clínica, fallidos y correctos: quién, cuándo y desde dónde.",
        parameters=[
            OpenApiParameter("email", str, description="Solo los intentos de esta cuenta."),
            OpenApiParameter("limit", int, description="Cuántos (1–500, por defecto 100)."),
        ],
        responses={
            200: SignInSerializer(many=True),
            400: error_response("limit no es un número."),
            **CLINIC_ADMIN_ERRORS,
        },
    )
    def get(self, request):
        try:
            limit = min(max(int(request.query_params.get("limit", 100)), 1), 500)
        except ValueError:
            return Response({"error": "limit debe ser un número."}, status=status.HTTP_400_BAD_REQUEST)
        entries = sign_ins_recent(limit=limit, email=request.query_params.get("email") or None)
        return Response(SignInSerializer(entries, many=True).data)
