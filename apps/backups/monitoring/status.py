"""The guide's two monitoring queries, for thousands of clinics.

Backup records live in each clinic's schema, so the per-clinic figures come
from one ``UNION ALL`` statement over the clinics' schemas (in chunks of
``SCHEMAS_PER_QUERY``), joined with the public Clinic row; the health check
only needs the Clinic rows (``last_backup_at``, schedule, back-off): one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.backups.alerts import health_change_alert
from apps.backups.engine.naming import validate_schema_name
from apps.backups.scheduling.rules import backup_missed_since, backup_next_due
from apps.backups.selectors import schemas_with_backup_table
from apps.tenants.models import Clinic
from apps.tenants.selectors import clinics_for_backup

SCHEMAS_PER_QUERY = 500
STATUS_WINDOW_DAYS = 30


@dataclass(frozen=True)
class ClinicBackupStatus:
    schema_name: str
    name: str
    backup_schedule: str
    time_zone: str
    backups_30d: int
    bytes_30d: int
    failed_30d: int
    last_backup_at: datetime | None  # newest record, any type and status
    last_backup_status: str
    last_backup_type: str
    last_good_at: datetime | None  # newest succeeded backup, any type
    last_automatic_at: datetime | None  # Clinic.last_backup_at
    next_due_at: datetime | None
    consecutive_failures: int
    retry_at: datetime | None


@dataclass(frozen=True)
class OverdueClinic:
    schema_name: str
    name: str
    backup_schedule: str
    last_backup_at: datetime | None
    due_since: datetime
    consecutive_failures: int
    retry_at: datetime | None


_PER_SCHEMA_SQL = """
SELECT %s::text AS schema_name,
       count(*) FILTER (WHERE status = 'succeeded' AND created_at > %s) AS backups_30d,
       coalesce(sum(file_size) FILTER (WHERE status = 'succeeded' AND created_at > %s), 0) AS bytes_30d,
       count(*) FILTER (WHERE status = 'failed' AND created_at > %s) AS failed_30d,
       max(created_at) FILTER (WHERE status = 'succeeded') AS last_good_at,
       (SELECT array[created_at::text, status, backup_type] FROM {table} ORDER BY created_at DESC, id DESC LIMIT 1)
FROM {table}
"""


def _history_figures(schemas: list[str], *, since: datetime) -> dict[str, tuple]:
    figures = {}
    for start in range(0, len(schemas), SCHEMAS_PER_QUERY):
        chunk = schemas[start : start + SCHEMAS_PER_QUERY]
        parts, params = [], []
        for schema in chunk:
            table = f"{connection.ops.quote_name(validate_schema_name(schema))}.backups_backuprecord"
            parts.append(_PER_SCHEMA_SQL.format(table=table))
            params += [schema, since, since, since]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            for schema, count, size, failed, last_good, last in cursor.fetchall():
                figures[schema] = (count, size, failed, last_good, last)
    return figures


def backup_status_list(*, now: datetime) -> list[ClinicBackupStatus]:
    """Per clinic: backups and bytes in the last 30 days, last backup (age,
    status), next due time and consecutive failures."""
    clinics = list(clinics_for_backup().order_by("schema_name"))
    with_table = schemas_with_backup_table()
    since = now - timedelta(days=STATUS_WINDOW_DAYS)
    figures = _history_figures([c.schema_name for c in clinics if c.schema_name in with_table], since=since)
    statuses = []
    for clinic in clinics:
        count, size, failed, last_good, last = figures.get(clinic.schema_name, (0, 0, 0, None, None))
        last_at = datetime.fromisoformat(last[0]) if last else None
        statuses.append(
            ClinicBackupStatus(
                schema_name=clinic.schema_name,
                name=clinic.name,
                backup_schedule=clinic.backup_schedule,
                time_zone=clinic.time_zone,
                backups_30d=count,
                bytes_30d=int(size),
                failed_30d=failed,
                last_backup_at=last_at,
                last_backup_status=last[1] if last else "",
                last_backup_type=last[2] if last else "",
                last_good_at=last_good,
                last_automatic_at=clinic.last_backup_at,
                next_due_at=backup_next_due(
                    schedule=clinic.backup_schedule,
                    time_zone=clinic.time_zone,
                    last_backup_at=clinic.last_backup_at,
                    next_scheduled_backup=clinic.next_scheduled_backup,
                    retry_at=clinic.backup_retry_at,
                    now=now,
                ),
                consecutive_failures=clinic.backup_failures,
                retry_at=clinic.backup_retry_at,
            )
        )
    return statuses


def clinics_overdue(*, now: datetime) -> tuple[int, list[OverdueClinic]]:
    """Clinics whose automatic backup has been due for longer than
    ``BACKUP_HEALTH_GRACE_MINUTES`` (their last good automatic backup is older
    than their schedule allows), and how many clinics were checked. One query."""
    grace = timedelta(minutes=settings.BACKUP_HEALTH_GRACE_MINUTES)
    rows = (
        Clinic.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
        .exclude(backup_schedule="disabled")
        .order_by("schema_name")
        .values_list(
            "schema_name",
            "name",
            "backup_schedule",
            "time_zone",
            "last_backup_at",
            "next_scheduled_backup",
            "backup_failures",
            "backup_retry_at",
        )
    )
    checked, overdue = 0, []
    for schema, name, schedule, zone, last, next_at, failures, retry_at in rows:
        checked += 1
        missed_since = backup_missed_since(
            schedule=schedule, time_zone=zone, last_backup_at=last, next_scheduled_backup=next_at, now=now
        )
        if missed_since is not None and missed_since + grace < now:
            overdue.append(OverdueClinic(schema, name, schedule, last, missed_since, failures, retry_at))
    return checked, overdue


def health_alert_check(*, now: datetime | None = None) -> str:
    """Alert the operators when the backup health turns degraded, and when it is ok
    again: called by every scheduler run and by ``/health/backups/``. Returns the status."""
    now = now or timezone.now()
    _checked, overdue = clinics_overdue(now=now)
    return health_change_alert(overdue=overdue, now=now)
