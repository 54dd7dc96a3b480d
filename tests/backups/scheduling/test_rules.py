"""The automatic backup rules, in clinic time zones, with an explicit ``now``."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.backups.scheduling.rules import backup_due_slot, backup_next_due, retry_delay, week_sunday


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def due(schedule, now, *, last=None, next_at=None, tz="UTC"):
    slot = backup_due_slot(schedule=schedule, time_zone=tz, last_backup_at=last, next_scheduled_backup=next_at, now=now)
    return slot.slot if slot else None


# 2025-11-30 is a Sunday.
SUNDAY = utc(2025, 11, 30, 10, 0)


def test_disabled_is_never_due():
    assert due("disabled", SUNDAY) is None
    assert due("disabled", SUNDAY, next_at=SUNDAY - timedelta(days=1)) is None


def test_daily_due_once_per_day_across_the_day_boundary():
    assert due("daily", utc(2025, 11, 25, 0, 0)) == "daily:2025-11-25"  # never backed up
    backed_up = utc(2025, 11, 25, 0, 1)
    assert due("daily", utc(2025, 11, 25, 12, 0), last=backed_up) is None
    assert due("daily", utc(2025, 11, 25, 23, 59, 59), last=backed_up) is None
    assert due("daily", utc(2025, 11, 26, 0, 0), last=backed_up) == "daily:2025-11-26"
    # A backup late in the evening does not count for the next day.
    assert due("daily", utc(2025, 11, 26, 0, 0, 30), last=utc(2025, 11, 25, 23, 59, 59)) == "daily:2025-11-26"
    # Several days without a backup: one backup, for today.
    assert due("daily", utc(2025, 11, 29, 8, 0), last=backed_up) == "daily:2025-11-29"


def test_weekly_due_on_sunday_only_once():
    saturday = utc(2025, 11, 29, 23, 0)
    last_sunday_backup = utc(2025, 11, 23, 3, 0)
    assert due("weekly", saturday, last=last_sunday_backup) is None
    assert due("weekly", utc(2025, 11, 30, 0, 0), last=last_sunday_backup) == "weekly:2025-11-30"
    assert due("weekly", SUNDAY, last=utc(2025, 11, 30, 0, 5)) is None
    assert due("weekly", utc(2025, 12, 6, 23, 59), last=utc(2025, 11, 30, 0, 5)) is None


def test_missed_sunday_is_caught_up_during_the_week():
    # The worker was down all Sunday: Monday (or Wednesday) backs up for that Sunday.
    last = utc(2025, 11, 23, 3, 0)
    assert due("weekly", utc(2025, 12, 1, 9, 0), last=last) == "weekly:2025-11-30"
    assert due("weekly", utc(2025, 12, 3, 9, 0), last=last) == "weekly:2025-11-30"
    # Once caught up, nothing more until the next Sunday.
    assert due("weekly", utc(2025, 12, 3, 9, 30), last=utc(2025, 12, 3, 9, 0)) is None
    assert due("weekly", utc(2025, 12, 7, 0, 0), last=utc(2025, 12, 3, 9, 0)) == "weekly:2025-12-07"


def test_week_sunday():
    assert week_sunday(SUNDAY.date()).isoformat() == "2025-11-30"
    assert week_sunday(utc(2025, 12, 6).date()).isoformat() == "2025-11-30"  # Saturday
    assert week_sunday(utc(2025, 12, 1).date()).isoformat() == "2025-11-30"  # Monday


@pytest.mark.parametrize(
    ("tz", "now", "expected"),
    [
        # 2025-11-26 05:30 UTC is still the 25th in Mexico City (UTC-6) and already the 26th in Tokyo (UTC+9).
        ("America/Mexico_City", utc(2025, 11, 26, 5, 30), None),
        ("Asia/Tokyo", utc(2025, 11, 26, 5, 30), None),
        ("America/Mexico_City", utc(2025, 11, 26, 6, 0), "daily:2025-11-26"),
        ("Asia/Tokyo", utc(2025, 11, 26, 15, 0), "daily:2025-11-27"),
        ("UTC", utc(2025, 11, 26, 5, 30), "daily:2025-11-26"),
    ],
)
def test_daily_uses_the_clinics_own_day(tz, now, expected):
    # Backed up at 2025-11-25 20:00 UTC: 14:00 in Mexico City, 05:00 on the 26th in Tokyo.
    assert due("daily", now, last=utc(2025, 11, 25, 20, 0), tz=tz) == expected


def test_weekly_uses_the_clinics_own_sunday():
    last = utc(2025, 11, 23, 12, 0)  # the previous Sunday everywhere
    # Saturday 2025-11-29 16:00 UTC is already Sunday 01:00 in Tokyo, still Saturday 10:00 in Mexico City.
    saturday_utc = utc(2025, 11, 29, 16, 0)
    assert due("weekly", saturday_utc, last=last, tz="Asia/Tokyo") == "weekly:2025-11-30"
    assert due("weekly", saturday_utc, last=last, tz="America/Mexico_City") is None
    # Monday 2025-12-01 05:00 UTC is still Sunday 23:00 in Mexico City.
    assert due("weekly", utc(2025, 12, 1, 5, 0), last=last, tz="America/Mexico_City") == "weekly:2025-11-30"


def test_scheduled_one_off():
    at = utc(2025, 11, 25, 14, 30)
    assert due("scheduled", at - timedelta(seconds=1), next_at=at) is None
    assert due("scheduled", at, next_at=at) == "scheduled:2025-11-25T14:30:00Z"
    # A one-off in the past (worker down at the time) is still made.
    assert due("scheduled", at + timedelta(days=3), next_at=at) == "scheduled:2025-11-25T14:30:00Z"
    assert due("scheduled", at, next_at=None) is None


def test_next_due_and_back_off():
    last = utc(2025, 11, 25, 3, 0)
    now = utc(2025, 11, 25, 12, 0)
    common = {"time_zone": "UTC", "next_scheduled_backup": None, "now": now}
    assert backup_next_due(schedule="daily", last_backup_at=last, retry_at=None, **common) == utc(2025, 11, 26)
    assert backup_next_due(schedule="weekly", last_backup_at=last, retry_at=None, **common) == utc(2025, 11, 30)
    retry = utc(2025, 11, 25, 12, 20)
    assert backup_next_due(schedule="daily", last_backup_at=None, retry_at=retry, **common) == retry
    assert backup_next_due(schedule="disabled", last_backup_at=None, retry_at=None, **common) is None
    assert [retry_delay(n).total_seconds() / 60 for n in (1, 2, 3, 4, 10)] == [5, 10, 20, 40, 240]
