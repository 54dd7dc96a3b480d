"""JWT bound to the clinic that issued it.

django-tenants gives each clinic its own users table, so user ids repeat across
clinics: a plain simplejwt token from clinic A (``user_id=1``) would log in as
user 1 of clinic B. Every token therefore carries the issuing clinic's schema,
and a token presented on any other clinic's domain is refused with 401.
"""

from __future__ import annotations

from django.db import connection
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

CLINIC_CLAIM = "clinic"


def current_clinic_schema() -> str:
    return connection.schema_name


def ensure_token_belongs_to_current_clinic(token) -> None:
    if token.get(CLINIC_CLAIM) != current_clinic_schema():
        raise InvalidToken("El token no pertenece a esta clínica.")


class ClinicJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        ensure_token_belongs_to_current_clinic(token)
        return token
