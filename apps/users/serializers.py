from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from apps.users.authentication import (
    CLINIC_CLAIM,
    current_clinic_schema,
    ensure_token_belongs_to_current_clinic,
    ensure_token_issued_after_last_restore,
)


class ClinicTokenObtainPairSerializer(TokenObtainPairSerializer):
    @classmethod
    def get_token(cls, user):
        token = super().get_token(user)
        token[CLINIC_CLAIM] = current_clinic_schema()
        token["role"] = user.role
        return token


class ClinicTokenRefreshSerializer(TokenRefreshSerializer):
    def validate(self, attrs):
        refresh = RefreshToken(attrs["refresh"])
        ensure_token_belongs_to_current_clinic(refresh)
        ensure_token_issued_after_last_restore(refresh)
        return super().validate(attrs)
