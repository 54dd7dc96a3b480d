"""JWT bound to the clinic that issued it, and revocable.

django-tenants gives each clinic its own users table, so user ids repeat across
clinics: a plain simplejwt token from clinic A (``user_id=1``) would log in as
user 1 of clinic B. Every token therefore carries the issuing clinic's schema,
and a token presented on any other clinic's domain is refused with 401.

Every token also carries when its user signed in with a password
(``auth_time_us``, microseconds since the epoch; kept through refreshes): tokens
from before the clinic's last restore are refused, to the microsecond, and
re-authentication for destructive operations (``apps.users.reauth``) reads it.
Refresh tokens rotate and are blacklisted (simplejwt's blacklist, in each
clinic's schema); a password change or a deactivation revokes all of a user's
tokens (``apps.users.signals``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.db import connection
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

CLINIC_CLAIM = "clinic"
AUTH_TIME_CLAIM = "auth_time_us"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def current_clinic_schema() -> str:
    return connection.schema_name


def now_us() -> int:
    return time.time_ns() // 1000


def epoch_us(moment: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def token_signed_in_us(token) -> int:
    """When the token's user signed in with a password; tokens issued before this
    claim existed fall back to their whole-second ``iat``."""
    value = token.get(AUTH_TIME_CLAIM)
    if isinstance(value, int):
        return value
    return int(token.get("iat", 0)) * 1_000_000


def ensure_token_belongs_to_current_clinic(token) -> None:
    if token.get(CLINIC_CLAIM) != current_clinic_schema():
        raise InvalidToken("El token no pertenece a esta clínica.")


def ensure_token_issued_after_last_restore(token) -> None:
    """A restore may change users and roles: sessions from before it end. Compared
    to the microsecond, so a sign-in in the same second just before a restore is
    refused too."""
    from apps.backups.restore.swap import last_restore_at

    restored_at = last_restore_at()
    if restored_at and token_signed_in_us(token) <= epoch_us(restored_at):
        raise InvalidToken("La clínica se restauró después de iniciar sesión: vuelve a iniciar sesión.")


class ClinicJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        ensure_token_belongs_to_current_clinic(token)
        ensure_token_issued_after_last_restore(token)
        return token
