"""Sign-in protection and records, on django-axes (README: "Security").

django-axes hooks Django's ``authenticate()``: every way to sign in that calls
``authenticate(request=..., ...)`` (the token endpoint, the admin, a clinic's
HTML page) is counted. Its tables live in each clinic's schema (and in public,
for the platform admin), so attempts, locks and records are per clinic and
shared by every web process through the database.

This module holds the project's side of it: who is signing in and from where
(behind ``NUM_PROXIES`` as downloads are), the growing cool-down, the Spanish
429, and the records a clinic admin and operators read.
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

logger = logging.getLogger(__name__)

LOCKOUT_WINDOW = timedelta(hours=24)  # lockouts earned in this window make the next cool-down longer


def client_address(request) -> str | None:
    """Who asked: REMOTE_ADDR, or behind ``NUM_PROXIES`` trusted proxies the
    address the outermost one saw (entries further left can be forged)."""
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if settings.NUM_PROXIES and forwarded:
        candidate = forwarded[-min(settings.NUM_PROXIES, len(forwarded))]
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            logger.warning("X-Forwarded-For no válido: %r; se usa REMOTE_ADDR", candidate[:64])
    return request.META.get("REMOTE_ADDR")


def sign_in_username(request, credentials: dict | None) -> str | None:
    """The account being tried: ``email`` (our API, clinic pages) or ``username``
    (Django's admin form), lower-cased as accounts are stored."""
    credentials = credentials or {}
    value = credentials.get("email") or credentials.get("username")
    if value is None and request is not None:
        data = getattr(request, "data", None) or getattr(request, "POST", {})
        value = data.get("email") or data.get("username") if hasattr(data, "get") else None
    return str(value).strip().lower() if value else None


def sign_in_cool_off(request=None) -> timedelta:
    """``AUTH_LOCKOUT_MINUTES`` for a first lockout, doubled for each further
    lockout of the same account or address in the last 24 hours, at most
    ``AUTH_LOCKOUT_MAX_MINUTES``."""
    from axes.models import AccessFailureLog

    base = timedelta(minutes=settings.AUTH_LOCKOUT_MINUTES)
    ceiling = timedelta(minutes=settings.AUTH_LOCKOUT_MAX_MINUTES)
    if request is None:
        return base
    who = Q()
    address = getattr(request, "axes_ip_address", None) or client_address(request)
    if address:
        who |= Q(ip_address=address)
    username = sign_in_username(request, getattr(request, "axes_credentials", None))
    if username:
        who |= Q(username=username)
    if not who:
        return base
    lockouts = AccessFailureLog.objects.filter(
        who, locked_out=True, attempt_time__gte=timezone.now() - LOCKOUT_WINDOW
    ).count()
    return min(base * 2 ** max(lockouts - 1, 0), ceiling)


def lockout_message(request) -> str:
    minutes = max(1, round(sign_in_cool_off(request).total_seconds() / 60))
    return (
        "Demasiados intentos de inicio de sesión fallidos. "
        f"Por seguridad, espera {minutes} minuto{'s' if minutes != 1 else ''} antes de volver a intentarlo."
    )


def lockout_seconds(request) -> int:
    return int(sign_in_cool_off(request).total_seconds())


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout page (``AXES_LOCKOUT_CALLABLE``): 429 in Spanish;
    ``{"error": ...}`` under /api/, plain text elsewhere (the admin)."""
    message = lockout_message(request)
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": message}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(lockout_seconds(request))
    return response


def account_failures_clear(*, username: str) -> int:
    """A successful sign-in ends the count of failures for that account (from any
    address), and only for it: failures from the same address against other
    accounts still count. Returns how many attempt rows were removed."""
    from axes.models import AccessAttempt

    removed, _ = AccessAttempt.objects.filter(username=username.strip().lower()).delete()
    return removed


def sign_ins_recent(*, limit: int = 100, email: str | None = None) -> list[dict]:
    """The current clinic's latest sign-ins, failed and successful, newest first."""
    from axes.models import AccessFailureLog, AccessLog

    entries = []
    for model, succeeded in ((AccessLog, True), (AccessFailureLog, False)):
        rows = model.objects.order_by("-attempt_time")
        if email:
            rows = rows.filter(username=email.strip().lower())
        for row in rows[:limit]:
            entries.append(
                {
                    "email": row.username,
                    "succeeded": succeeded,
                    "locked_out": getattr(row, "locked_out", False),
                    "at": row.attempt_time,
                    "ip_address": row.ip_address,
                    "user_agent": row.user_agent,
                    "path": row.path_info,
                }
            )
    entries.sort(key=lambda entry: entry["at"], reverse=True)
    return entries[:limit]
