"""State changes of clinics (public schema)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from apps.tenants.models import Clinic, Domain


class ScheduleError(ValueError):
    """The requested backup schedule is not valid; the message is user-facing."""


def clinic_backup_config_update(
    *, clinic: Clinic, backup_schedule: str, next_scheduled_backup: datetime | None
) -> Clinic:
    """Set a clinic's automatic backup schedule.

    ``scheduled`` needs a future ``next_scheduled_backup``; the other schedules
    clear it so a stale one-off date cannot fire later.
    """
    if backup_schedule not in Clinic.BackupSchedule.values:
        raise ScheduleError(f"Frecuencia desconocida: {backup_schedule}")
    if backup_schedule == Clinic.BackupSchedule.SCHEDULED:
        if next_scheduled_backup is None:
            raise ScheduleError("Un backup programado necesita 'next_scheduled_backup'.")
        if next_scheduled_backup <= timezone.now():
            raise ScheduleError("'next_scheduled_backup' debe ser una fecha futura.")
    else:
        next_scheduled_backup = None
    clinic.backup_schedule = backup_schedule
    clinic.next_scheduled_backup = next_scheduled_backup
    clinic.save(update_fields=["backup_schedule", "next_scheduled_backup"])
    return clinic


def clinic_create(*, schema_name: str, name: str, domain: str, time_zone: str | None = None) -> Clinic:
    """Create a clinic, its schema (with all tenant migrations) and its primary domain."""
    clinic = Clinic(schema_name=schema_name, name=name)
    if time_zone:
        clinic.time_zone = time_zone
    clinic.full_clean(exclude=["created_on"])
    clinic.save(verbosity=0)
    Domain.objects.create(domain=domain, tenant=clinic, is_primary=True)
    return clinic
