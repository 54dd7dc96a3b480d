"""Browser sessions bound to their clinic and ended by restores, as tokens are
(``apps.users.authentication``).

Each clinic schema has its own session table, so a session cookie of clinic A
is simply unknown on clinic B's domain. Two more rules make sessions behave
like the JWTs: a session remembers the clinic and the time it signed in, and
it ends if that clinic was restored afterwards (a restore brings back the
session table and the users of its backup).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout
from django.db import connection
from django.utils import timezone

SESSION_CLINIC = "clinic"
SESSION_LOGIN_AT = "login_at"

# Why the middleware ended a session (read by pages to say so).
ENDED_BY_RESTORE = "restore"
ENDED_OTHER_CLINIC = "other_clinic"


def session_bind_to_clinic(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: record which clinic signed in, and when."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_CLINIC] = connection.schema_name
        session[SESSION_LOGIN_AT] = timezone.now().timestamp()


def session_end_reason(session) -> str | None:
    """Why the session signed in on this request's clinic may no longer be used, if so."""
    if session.get(SESSION_CLINIC) != connection.schema_name:
        return ENDED_OTHER_CLINIC
    from apps.backups.restore.swap import last_restore_at

    restored_at = last_restore_at()
    if restored_at and session.get(SESSION_LOGIN_AT, 0) < restored_at.timestamp():
        return ENDED_BY_RESTORE
    return None


class ClinicSessionMiddleware:
    """After AuthenticationMiddleware: signs out sessions of another clinic or from
    before the clinic's last restore. ``request.session_ended`` says why."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.session_ended = None
        tenant = getattr(request, "tenant", None)
        in_clinic = tenant is not None and tenant.schema_name != settings.PUBLIC_SCHEMA_NAME
        if in_clinic and "_auth_user_id" in request.session:
            reason = session_end_reason(request.session)
            if reason:
                logout(request)
                request.session_ended = reason
        return self.get_response(request)
