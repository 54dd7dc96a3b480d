"""The guide's automatic backup rules, evaluated in each clinic's own time zone.

- ``daily``: due when no successful automatic backup exists yet on the clinic's
  current day (slot ``daily:<local date>``).
- ``weekly``: due from the clinic's Sunday 00:00 until a backup succeeds; a
  missed Sunday is caught up on the following days of that week (slot
  ``weekly:<date of that Sunday>``).
- ``scheduled``: due once ``next_scheduled_backup <= now`` (slot
  ``scheduled:<that time, UTC>``).

Everything takes an explicit ``now`` so that tests and operators can ask "what
is due at this moment" without touching the clock. The functions here are pure;
the queries and the run live in ``scheduling_selectors`` and ``scheduling_run``.
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from django.conf import settings

logger = logging.getLogger(__name__)

DAILY, WEEKLY, SCHEDULED, DISABLED = "daily", "weekly", "scheduled", "disabled"


@dataclass(frozen=True)
class DueSlot:
    """A backup a clinic needs: which period it covers and since when it is due."""

    slot: str
    due_since: datetime


@lru_cache(maxsize=1024)
def clinic_zone(name: str) -> zoneinfo.ZoneInfo:
    """The clinic's zone; an unknown name (edited outside the validated field) falls back to TIME_ZONE."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        logger.warning("Zona horaria desconocida %r: se usa %s", name, settings.TIME_ZONE)
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    """Start of ``day`` in ``zone``, as an aware UTC datetime."""
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def week_sunday(day: date) -> date:
    """The Sunday that starts ``day``'s week (the guide's weekly day)."""
    return day - timedelta(days=(day.weekday() + 1) % 7)


def backup_due_slot(
    *,
    schedule: str,
    time_zone: str,
    last_backup_at: datetime | None,
    next_scheduled_backup: datetime | None,
    now: datetime,
) -> DueSlot | None:
    """The slot a clinic must be backed up for at ``now``, or None when nothing is due.

    ``last_backup_at`` is the last *successful automatic* backup.
    """
    if schedule == SCHEDULED:
        if next_scheduled_backup is not None and next_scheduled_backup <= now:
            stamp = next_scheduled_backup.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return DueSlot(slot=f"scheduled:{stamp}", due_since=next_scheduled_backup)
        return None
    if schedule not in {DAILY, WEEKLY}:
        return None
    zone = clinic_zone(time_zone)
    today = now.astimezone(zone).date()
    if schedule == DAILY:
        start, slot = local_midnight(today, zone), f"daily:{today.isoformat()}"
    else:
        sunday = week_sunday(today)
        start, slot = local_midnight(sunday, zone), f"weekly:{sunday.isoformat()}"
    if last_backup_at is None or last_backup_at < start:
        return DueSlot(slot=slot, due_since=start)
    return None


def backup_missed_since(
    *,
    schedule: str,
    time_zone: str,
    last_backup_at: datetime | None,
    next_scheduled_backup: datetime | None,
    now: datetime,
) -> datetime | None:
    """Since when a clinic lacks a backup its schedule asked for (start of the first
    slot after its last good automatic backup), or None when it is up to date."""
    due = backup_due_slot(
        schedule=schedule,
        time_zone=time_zone,
        last_backup_at=last_backup_at,
        next_scheduled_backup=next_scheduled_backup,
        now=now,
    )
    if due is None:
        return None
    if schedule in {DAILY, WEEKLY} and last_backup_at is not None:
        zone = clinic_zone(time_zone)
        day = last_backup_at.astimezone(zone).date()
        first = day + timedelta(days=1) if schedule == DAILY else week_sunday(day) + timedelta(days=7)
        return min(local_midnight(first, zone), due.due_since)
    return due.due_since


def backup_next_due(
    *,
    schedule: str,
    time_zone: str,
    last_backup_at: datetime | None,
    next_scheduled_backup: datetime | None,
    retry_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """When the next automatic backup will be attempted (for status displays)."""
    due = backup_due_slot(
        schedule=schedule,
        time_zone=time_zone,
        last_backup_at=last_backup_at,
        next_scheduled_backup=next_scheduled_backup,
        now=now,
    )
    if due is not None:
        upcoming = due.due_since
    elif schedule == SCHEDULED:
        upcoming = next_scheduled_backup
    elif schedule in {DAILY, WEEKLY}:
        zone = clinic_zone(time_zone)
        today = now.astimezone(zone).date()
        next_day = today + timedelta(days=1) if schedule == DAILY else week_sunday(today) + timedelta(days=7)
        upcoming = local_midnight(next_day, zone)
    else:
        return None
    if upcoming is not None and retry_at is not None:
        upcoming = max(upcoming, retry_at)
    return upcoming


def retry_delay(failures: int) -> timedelta:
    """Exponential back-off after ``failures`` consecutive failures, capped."""
    base = settings.BACKUP_RETRY_BASE_MINUTES
    minutes = min(base * 2 ** max(failures - 1, 0), settings.BACKUP_RETRY_MAX_MINUTES)
    return timedelta(minutes=minutes)
