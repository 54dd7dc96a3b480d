"""Which clinics need an automatic backup now: one query over the public Clinic table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from apps.backups.scheduling.rules import DAILY, SCHEDULED, WEEKLY, backup_due_slot, backup_next_due
from apps.tenants.models import Clinic

DUE_FIELDS = ("id", "schema_name", "name", "backup_schedule", "time_zone", "last_backup_at", "next_scheduled_backup")


@dataclass(frozen=True)
class DueBackup:
    clinic_id: int
    schema_name: str
    name: str
    schedule: str
    slot: str
    due_since: datetime


def backups_due(*, now: datetime) -> list[DueBackup]:
    """Clinics due for an automatic backup at ``now``, longest-waiting first.

    One query: the schedule and back-off are filtered in SQL, the clinic's
    local day (time zones) in Python on the few columns fetched. ``public`` is
    never included; a clinic waiting out its back-off is not either.
    """
    rows = (
        Clinic.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
        .filter(
            Q(backup_schedule__in=[DAILY, WEEKLY]) | Q(backup_schedule=SCHEDULED, next_scheduled_backup__lte=now),
            Q(backup_retry_at__isnull=True) | Q(backup_retry_at__lte=now),
        )
        .order_by()
        .values_list(*DUE_FIELDS)
    )
    due = []
    for clinic_id, schema_name, name, schedule, time_zone, last_backup_at, next_scheduled in rows:
        slot = backup_due_slot(
            schedule=schedule,
            time_zone=time_zone,
            last_backup_at=last_backup_at,
            next_scheduled_backup=next_scheduled,
            now=now,
        )
        if slot is not None:
            due.append(DueBackup(clinic_id, schema_name, name, schedule, slot.slot, slot.due_since))
    due.sort(key=lambda item: (item.due_since, item.schema_name))
    return due


def clinic_next_backup_at(*, clinic: Clinic, now: datetime) -> datetime | None:
    """When the clinic's next automatic backup will be attempted (None: no schedule)."""
    return backup_next_due(
        schedule=clinic.backup_schedule,
        time_zone=clinic.time_zone,
        last_backup_at=clinic.last_backup_at,
        next_scheduled_backup=clinic.next_scheduled_backup,
        retry_at=clinic.backup_retry_at,
        now=now,
    )
