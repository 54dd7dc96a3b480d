"""Re-authentication for destructive operations (restore, deleting a backup).

An operation that can destroy or leak a whole clinic's records needs more than
a bearer token, however it was obtained: either the user's password in the
same request, or a sign-in with a password within the last
``REAUTH_WINDOW_MINUTES``. Otherwise 403 with a clear reason.

Use it from a DRF view with the permission class::

    permission_classes = [IsAuthenticated, IsClinicAdmin, RecentAuthentication]

(it reads ``password`` from the request body), or call
:func:`reauthentication_ensure` where the body must not be read before other
checks (the restore upload checks its size first). An HTML page (session
login) calls :func:`reauthentication_problem` and shows the message. The
password is checked with ``authenticate(request=...)``, so wrong passwords count
towards the sign-in lockout like any other.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from rest_framework import permissions, status
from rest_framework.exceptions import APIException

from apps.users.authentication import now_us, token_signed_in_us
from apps.users.sign_ins import lockout_message

PASSWORD_FIELD = "password"  # noqa: S105 (the field name, not a password)
SESSION_AUTH_TIME_KEY = "psico_auth_time_us"


class ReauthenticationRequired(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "reauthentication_required"

    def __init__(self, message: str):
        super().__init__(message)


class SignInLockedOut(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self, message: str):
        super().__init__(message)


def signed_in_us(request) -> int | None:
    """When the request's user last signed in with a password: the JWT's claim,
    or the session's (set at login)."""
    token = getattr(request, "auth", None)
    if token is not None and hasattr(token, "get"):
        return token_signed_in_us(token)
    session = getattr(request, "session", None)
    if session is not None:
        value = session.get(SESSION_AUTH_TIME_KEY)
        return value if isinstance(value, int) else None
    return None


def reauthentication_problem(request, *, password: str | None) -> str | None:
    """None when the request may go on; else why not, in Spanish. Raises
    :class:`SignInLockedOut` when the account or address is locked out."""
    user = request.user
    if password:
        checked = authenticate(request=request, email=user.email, password=password)
        if getattr(request, "axes_locked_out", False):
            raise SignInLockedOut(lockout_message(request))
        if checked is None or checked.pk != user.pk:
            return "La contraseña no es correcta: esta operación necesita la contraseña de tu cuenta."
        return None
    window_minutes = settings.REAUTH_WINDOW_MINUTES
    signed_in = signed_in_us(request)
    if signed_in is not None and now_us() - signed_in <= window_minutes * 60 * 1_000_000:
        return None
    return (
        "Esta operación es irreversible y requiere confirmar tu identidad: envía tu contraseña en el campo "
        f"'{PASSWORD_FIELD}', o vuelve a iniciar sesión (vale durante {window_minutes} minutos)."
    )


def reauthentication_ensure(request, *, password: str | None) -> None:
    problem = reauthentication_problem(request, password=password)
    if problem:
        raise ReauthenticationRequired(problem)


class RecentAuthentication(permissions.BasePermission):
    """DRF permission: the password in the body (``password``) or a recent sign-in."""

    def has_permission(self, request, view) -> bool:
        data = request.data if hasattr(request.data, "get") else {}
        reauthentication_ensure(request, password=data.get(PASSWORD_FIELD) or None)
        return True
