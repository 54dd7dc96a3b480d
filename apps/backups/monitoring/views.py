"""Backup health for the platform (public domain): which clinics are overdue.

Answers 200 when every clinic with a schedule has its backups, 503 otherwise, so
a plain uptime monitor can alert on it. Access: ``Authorization: Bearer
<BACKUP_HEALTH_TOKEN>`` or a logged-in platform staff user. Only clinic names,
schemas and backup times are shown: no clinical data, no error texts.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.backups.alerts import health_change_alert
from apps.backups.monitoring.status import clinics_overdue


def _authorized(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    token = settings.BACKUP_HEALTH_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


@require_GET
def backup_health(request: HttpRequest) -> JsonResponse:
    if not _authorized(request):
        response = JsonResponse({"error": "No autorizado: se necesita el token de salud de backups."}, status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    now = timezone.now()
    checked, overdue = clinics_overdue(now=now)
    health_change_alert(overdue=overdue, now=now)  # a change is announced to the operators once, whoever noticed it
    body = {
        "status": "degraded" if overdue else "ok",
        "checked_at": now.isoformat(),
        "clinics_checked": checked,
        "grace_minutes": settings.BACKUP_HEALTH_GRACE_MINUTES,
        "overdue": [
            {
                "schema_name": clinic.schema_name,
                "name": clinic.name,
                "backup_schedule": clinic.backup_schedule,
                "last_backup_at": _iso(clinic.last_backup_at),
                "missing_since": _iso(clinic.due_since),
                "consecutive_failures": clinic.consecutive_failures,
                "next_retry_at": _iso(clinic.retry_at),
            }
            for clinic in overdue
        ],
    }
    return JsonResponse(body, status=503 if overdue else 200, json_dumps_params={"ensure_ascii": False})
