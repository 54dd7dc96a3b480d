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


def ensure_token_issued_after_last_restore(token) -> None:
    """A restore may change users and roles: sessions from before it end."""
    from apps.backups.restore.swap import last_restore_at

    restored_at = last_restore_at()
    if restored_at and token.get("iat", 0) < int(restored_at.timestamp()):
        raise InvalidToken("La clínica se restauró después de iniciar sesión: vuelve a iniciar sesión.")


class ClinicJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        ensure_token_belongs_to_current_clinic(token)
        ensure_token_issued_after_last_restore(token)
        return token
