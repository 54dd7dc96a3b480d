from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from apps.users.serializers import ClinicTokenObtainPairSerializer, ClinicTokenRefreshSerializer


class TokenObtainApi(TokenObtainPairView):
    """Email and password of a user of this clinic → access and refresh tokens for this clinic only."""

    serializer_class = ClinicTokenObtainPairSerializer


class TokenRefreshApi(TokenRefreshView):
    serializer_class = ClinicTokenRefreshSerializer
