"""State changes of clinics (public schema)."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.utils import timezone
from django_tenants.clone import CloneSchema

from apps.tenants.models import Clinic, Domain


class ScheduleError(ValueError):
    """The requested backup schedule is not valid; the message is user-facing."""


def clinic_backup_config_update(
    *,
    clinic: Clinic,
    backup_schedule: str,
    next_scheduled_backup: datetime | None,
    explicit_date: bool = False,
) -> Clinic:
    """Set a clinic's automatic backup schedule.

    ``scheduled`` needs a future ``next_scheduled_backup``; the other schedules
    clear it so a stale one-off date cannot fire later. ``explicit_date``: the
    caller asked for that date, so it is refused (not silently dropped) with
    another schedule.
    """
    if backup_schedule not in Clinic.BackupSchedule.values:
        raise ScheduleError(f"Frecuencia desconocida: {backup_schedule}")
    if explicit_date and next_scheduled_backup is not None and backup_schedule != Clinic.BackupSchedule.SCHEDULED:
        raise ScheduleError("'next_scheduled_backup' solo se usa con la frecuencia 'scheduled'.")
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


def clinic_clone(*, template: Clinic, schema_name: str, name: str, domain: str) -> Clinic:
    """Create a clinic whose schema is a copy (tables, data, applied migrations) of
    ``template``'s: much faster than migrating a new schema, for empty template
    clinics (onboarding, benchmarks, tests)."""
    connection.set_schema_to_public()
    CloneSchema().clone_schema(template.schema_name, schema_name, "DATA")
    clinic = Clinic(schema_name=schema_name, name=name, time_zone=template.time_zone)
    clinic.auto_create_schema = False  # the schema exists already
    clinic.full_clean(exclude=["created_on"])
    clinic.save()
    Domain.objects.create(domain=domain, tenant=clinic, is_primary=True)
    return clinic


def clinic_time_zone_update(*, clinic: Clinic, time_zone: str) -> Clinic:
    """Set the clinic's time zone (the platform's decision, not the clinic admin's):
    from then on its "today" and "Sunday" for automatic backups are in this zone."""
    clinic.time_zone = time_zone
    clinic.full_clean(exclude=["created_on"], validate_unique=False)
    clinic.save(update_fields=["time_zone"])
    return clinic
