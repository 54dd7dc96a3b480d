from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from rest_framework import serializers
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from apps.users.authentication import (
    AUTH_TIME_CLAIM,
    CLINIC_CLAIM,
    current_clinic_schema,
    ensure_token_belongs_to_current_clinic,
    ensure_token_issued_after_last_restore,
    now_us,
)


class ClinicTokenObtainPairSerializer(TokenObtainPairSerializer):
    @classmethod
    def get_token(cls, user):
        token = super().get_token(user)
        token[CLINIC_CLAIM] = current_clinic_schema()
        token["role"] = user.role
        token[AUTH_TIME_CLAIM] = now_us()
        return token

    def validate(self, attrs):
        data = super().validate(attrs)
        # Recorded as a sign-in (django-axes' access log, last_login) like a session login,
        # without the session django-axes would otherwise create for its log entry.
        request = _Sessionless(self.context["request"])
        user_logged_in.send(sender=self.user.__class__, request=request, user=self.user, via_token=True)
        return data


class _Sessionless:
    """The request as seen by sign-in receivers of a token sign-in: no session."""

    def __init__(self, request):
        object.__setattr__(self, "_wrapped", request)

    def __getattr__(self, name):
        if name == "session":
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, "_wrapped"), name)


class ClinicTokenRefreshSerializer(TokenRefreshSerializer):
    def validate(self, attrs):
        refresh = RefreshToken(attrs["refresh"])  # a blacklisted (revoked, rotated-away) token stops here
        ensure_token_belongs_to_current_clinic(refresh)
        ensure_token_issued_after_last_restore(refresh)
        if not get_user_model().objects.filter(pk=refresh.get(api_settings.USER_ID_CLAIM)).exists():
            raise InvalidToken("El usuario del token no existe.")  # deleted: 401, not simplejwt's DoesNotExist (404)
        return super().validate(attrs)


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField(help_text="El refresh token de la sesión que se cierra.")
    everywhere = serializers.BooleanField(
        default=False, help_text="true: cierra también todas las demás sesiones del usuario en esta clínica."
    )


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class SignInSerializer(serializers.Serializer):
    email = serializers.CharField(allow_null=True)
    succeeded = serializers.BooleanField()
    locked_out = serializers.BooleanField(help_text="El fallo bloqueó la cuenta o la dirección.")
    at = serializers.DateTimeField()
    ip_address = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    path = serializers.CharField()


class ReauthRequestSerializer(serializers.Serializer):
    password = serializers.CharField(
        required=False,
        write_only=True,
        trim_whitespace=False,
        help_text="Tu contraseña: obligatoria si no iniciaste sesión en los últimos REAUTH_WINDOW_MINUTES minutos.",
    )
