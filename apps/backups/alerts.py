"""Alerts for the platform's operators: email (Django's email framework, ``EMAIL_URL``)
and a Slack-compatible webhook (``BACKUP_ALERT_WEBHOOK_URL``).

Sent when a clinic's automatic backup fails (the first failure, then again only
while it is still failing ``BACKUP_ALERT_REPEAT_HOURS`` later), when it
recovers, when a restore or a restore drill fails, and when the backup health
check turns degraded (and back to ok). What was last said is kept in
``BackupAlertState`` (public schema), so overlapping cron runs do not repeat it.

Alerts carry the clinic's name and schema, times and our own error message
(secrets in URLs masked, trimmed): never clinical data, never keys. Sending
never fails the work that triggered it: a lost alert is logged.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from apps.backups.engine.pg_messages import pg_values_removed
from apps.tenants.models import BackupAlertState

logger = logging.getLogger(__name__)

HEALTH_KEY = "health"
MAX_DETAIL = 500
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@")
_SECRET_ASSIGNMENT = re.compile(r"(?i)((?:password|passwd|secret|token|key)\w*\s*[=:]\s*)\S+")


@dataclass(frozen=True)
class Alert:
    subject: str
    body: str
    schema_name: str = ""  # the clinic concerned, if any (its admins may be told too)
    operators_note: str = ""  # for the platform's operators only (email and webhook), not the clinic's admins

    @property
    def operators_body(self) -> str:
        return f"{self.body}\n{self.operators_note}" if self.operators_note else self.body


def safe_detail(text: str) -> str:
    """An error message fit for an alert: row values PostgreSQL quoted removed,
    credentials masked, one paragraph, trimmed."""
    text = pg_values_removed(text or "")
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    text = _SECRET_ASSIGNMENT.sub(r"\1***", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "—"


def _clinic_admin_emails(schema_name: str) -> list[str]:
    """The clinic's active admins; none while its schema is missing (a lost clinic being
    recovered), where the search path would fall through to the platform's own users."""
    from apps.users.models import User

    if not schema_exists(schema_name):
        return []
    with schema_context(schema_name):
        return list(
            User.objects.filter(role=User.Role.CLINIC_ADMIN, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )


def alert_send(alert: Alert) -> None:
    """Email the platform's operators (and the clinic's admins when configured), post
    to the webhook. Failures to deliver are logged, never raised."""
    messages = []
    prefixed = settings.EMAIL_SUBJECT_PREFIX + alert.subject
    if settings.BACKUP_ALERT_EMAILS:
        messages.append(EmailMessage(prefixed, alert.operators_body, to=list(settings.BACKUP_ALERT_EMAILS)))
    if alert.schema_name and settings.BACKUP_ALERT_CLINIC_ADMINS:
        admins = _clinic_admin_emails(alert.schema_name)
        if admins:  # a message of their own: they do not see the operators' addresses
            messages.append(EmailMessage(prefixed, alert.body, to=admins))
    if messages:
        try:
            connection = get_connection(timeout=settings.BACKUP_ALERT_TIMEOUT)
            connection.send_messages(messages)
        except Exception as error:  # SMTP down, refused, DNS: the alert is lost, the work goes on
            logger.error("No se pudo enviar el aviso por correo «%s»: %s", alert.subject, safe_detail(str(error)))
    if settings.BACKUP_ALERT_WEBHOOK_URL:
        _webhook_post(alert)


def _webhook_post(alert: Alert) -> None:
    url = settings.BACKUP_ALERT_WEBHOOK_URL
    if not url.startswith(("https://", "http://")):
        logger.error("BACKUP_ALERT_WEBHOOK_URL debe empezar por https://; aviso no enviado.")
        return
    text = f"*{_slack_escaped(alert.subject)}*\n{_slack_escaped(alert.operators_body)}"
    payload = json.dumps({"text": text}, ensure_ascii=False).encode()
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=payload, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.BACKUP_ALERT_TIMEOUT) as response:  # noqa: S310
            response.read()
    except Exception as error:  # the webhook's URL is a secret: never logged
        logger.error("No se pudo enviar el aviso al webhook «%s»: %s", alert.subject, type(error).__name__)


def _slack_escaped(text: str) -> str:
    """Slack reads ``<…>`` as a link or mention and ``&`` as an entity: a clinic called
    «Salud & Mente <Centro>» must arrive as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- automatic backups ---------------------------------------------------------------------


def backup_failure_alert(*, clinic, failures: int, error: str, retry_at: datetime | None, now: datetime) -> bool:
    """After a failed automatic backup: alert on the first failure, and again only if it
    still fails ``BACKUP_ALERT_REPEAT_HOURS`` after the last alert. True if sent."""
    key = f"backup:{clinic.schema_name}"
    BackupAlertState.objects.get_or_create(key=key)
    repeat_before = now - timedelta(hours=settings.BACKUP_ALERT_REPEAT_HOURS)
    # One conditional UPDATE: of several processes, one alerts.
    claimed = (
        BackupAlertState.objects.filter(key=key)
        .filter(Q(active=False) | Q(alerted_at__isnull=True) | Q(alerted_at__lte=repeat_before))
        .update(active=True, alerted_at=now)
    )
    if not claimed:
        return False
    still = "sigue fallando" if failures > 1 else "falló"
    alert_send(
        Alert(
            subject=f"Backup automático fallido: {clinic.name} ({clinic.schema_name})",
            body=(
                f"El backup automático de {clinic.name} (esquema {clinic.schema_name}) {still}.\n"
                f"Fallos seguidos: {failures}\n"
                f"Último intento: {_when(now)}\n"
                f"Próximo intento: {_when(retry_at)}\n"
                f"Motivo: {safe_detail(error)}\n\n"
                f"Mientras siga fallando se repetirá este aviso cada {settings.BACKUP_ALERT_REPEAT_HOURS} h."
            ),
            schema_name=clinic.schema_name,
            operators_note="Estado de todas las clínicas: /admin/ → Estado de backups, o manage.py backup_status.",
        )
    )
    return True


def backup_recovery_alert(*, clinic, now: datetime) -> bool:
    """After a successful automatic backup: alert if the clinic was failing. True if sent."""
    key = f"backup:{clinic.schema_name}"
    if not BackupAlertState.objects.filter(key=key, active=True).update(active=False, alerted_at=now):
        return False
    alert_send(
        Alert(
            subject=f"Backups recuperados: {clinic.name} ({clinic.schema_name})",
            body=(
                f"El backup automático de {clinic.name} (esquema {clinic.schema_name}) "
                f"volvió a funcionar el {_when(now)}."
            ),
            schema_name=clinic.schema_name,
        )
    )
    return True


# -- restores and drills ---------------------------------------------------------------------


def restore_failure_alert(*, schema_name: str, clinic_name: str, file_name: str, error: str) -> None:
    alert_send(
        Alert(
            subject=f"Restauración fallida: {clinic_name} ({schema_name})",
            body=(
                f"La restauración de {clinic_name} (esquema {schema_name}) desde {file_name or '—'} falló "
                f"el {_when(timezone.now())}. La clínica quedó como estaba.\n"
                f"Motivo: {safe_detail(error)}"
            ),
            schema_name=schema_name,
        )
    )


def drill_failure_alert(*, schema_name: str, clinic_name: str, file_name: str, detail: str) -> None:
    alert_send(
        Alert(
            subject=f"Simulacro de restauración fallido: {clinic_name} ({schema_name})",
            body=(
                f"El simulacro de restauración de {clinic_name} (esquema {schema_name}) con "
                f"{file_name or '—'} falló el {_when(timezone.now())}: ese backup podría no servir.\n"
                f"Motivo: {safe_detail(detail)}"
            ),
            schema_name=schema_name,
        )
    )


# -- /health/backups/ ----------------------------------------------------------------------------


def health_change_alert(*, overdue: list, now: datetime) -> str:
    """Alert when the backup health turns degraded (``overdue`` clinics, from
    ``monitoring.status.clinics_overdue``) and when it is ok again. Returns the status."""
    BackupAlertState.objects.get_or_create(key=HEALTH_KEY)
    if overdue:
        if BackupAlertState.objects.filter(key=HEALTH_KEY, active=False).update(active=True, alerted_at=now):
            lines = [
                f"- {clinic.name} ({clinic.schema_name}), {clinic.backup_schedule}: falta desde "
                f"{_when(clinic.due_since)}; fallos seguidos: {clinic.consecutive_failures}"
                for clinic in overdue
            ]
            alert_send(
                Alert(
                    subject=f"Backups atrasados: {len(overdue)} clínica(s)",
                    body=(
                        f"/health/backups/ pasó a «degraded» el {_when(now)}: a estas clínicas les falta el "
                        f"backup desde hace más de {settings.BACKUP_HEALTH_GRACE_MINUTES} minutos.\n" + "\n".join(lines)
                    ),
                )
            )
        return "degraded"
    if BackupAlertState.objects.filter(key=HEALTH_KEY, active=True).update(active=False, alerted_at=now):
        alert_send(
            Alert(
                subject="Backups al día",
                body=f"/health/backups/ volvió a «ok» el {_when(now)}: ninguna clínica tiene backups atrasados.",
            )
        )
    return "ok"
