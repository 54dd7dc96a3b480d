"""``/health/backups/``: the grace period, ``missing_since`` in the clinic's own time
zone, weekly and one-off clinics, and who may look. Times are relative to the real
clock (the view reads it), with margins of minutes on every boundary."""

import zoneinfo
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

from apps.tenants.models import Clinic
from apps.users.models import User
from tests.backups.monitoring.test_status import HEALTH_URL, platform  # noqa: F401 (fixture)

TOKEN = {"HTTP_AUTHORIZATION": "Bearer token-de-salud"}
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")  # UTC+9, no daylight saving: local midnight is 15:00 UTC


def overdue_by_schema(client) -> dict[str, dict]:
    response = client.get(HEALTH_URL, **TOKEN)
    body = response.json()
    assert response.status_code == (503 if body["overdue"] else 200)
    return {entry["schema_name"]: entry for entry in body["overdue"]}


def test_a_daily_clinic_is_missing_since_its_own_local_midnight_and_reported_after_the_grace(platform, settings):  # noqa: F811
    now = timezone.now()
    # 20:00 UTC is 05:00 of the next day in Tokyo: the day of the last backup differs by zone.
    last = (now - timedelta(days=3)).astimezone(UTC).replace(hour=20, minute=0, second=0, microsecond=0)
    Clinic.objects.filter(schema_name="alfa").update(
        backup_schedule="daily", time_zone="Asia/Tokyo", last_backup_at=last
    )
    # Tokyo's midnight after the day of its last backup, not UTC's.
    expected = datetime.combine(last.astimezone(TOKYO).date() + timedelta(days=1), time.min, tzinfo=TOKYO)
    missing_for = (now - expected).total_seconds() // 60

    settings.BACKUP_HEALTH_GRACE_MINUTES = int(missing_for) + 5
    assert overdue_by_schema(platform) == {}

    settings.BACKUP_HEALTH_GRACE_MINUTES = int(missing_for) - 5
    entry = overdue_by_schema(platform)["alfa"]
    assert datetime.fromisoformat(entry["missing_since"]) == expected
    assert entry["backup_schedule"] == "daily"
    assert datetime.fromisoformat(entry["last_backup_at"]) == last


def test_a_weekly_clinic_is_missing_since_the_sunday_after_its_last_backups_week(platform, settings):  # noqa: F811
    now = timezone.now()
    # A Saturday 20:00 UTC, 10 to 16 days ago: already Sunday, a new week, in Tokyo.
    last = (now - timedelta(days=10)).astimezone(UTC).replace(hour=20, minute=0, second=0, microsecond=0)
    last -= timedelta(days=(last.weekday() - 5) % 7)
    Clinic.objects.filter(schema_name="beta").update(
        backup_schedule="weekly", time_zone="Asia/Tokyo", last_backup_at=last
    )
    local = last.astimezone(TOKYO).date()
    sunday = local - timedelta(days=(local.weekday() + 1) % 7)
    expected = datetime.combine(sunday + timedelta(days=7), time.min, tzinfo=TOKYO)

    entry = overdue_by_schema(platform)["beta"]
    assert datetime.fromisoformat(entry["missing_since"]) == expected
    assert entry["backup_schedule"] == "weekly"

    # Backed up this week: nothing missing.
    Clinic.objects.filter(schema_name="beta").update(last_backup_at=now)
    assert "beta" not in overdue_by_schema(platform)


def test_a_one_off_backup_is_overdue_from_its_time_plus_the_grace(platform, settings):  # noqa: F811
    settings.BACKUP_HEALTH_GRACE_MINUTES = 120
    now = timezone.now().replace(microsecond=0)
    for minutes_ago, overdue in ((125, True), (115, False), (-60, False)):
        when = now - timedelta(minutes=minutes_ago)
        Clinic.objects.filter(schema_name="alfa").update(
            backup_schedule="scheduled", next_scheduled_backup=when, last_backup_at=None
        )
        found = overdue_by_schema(platform)
        assert ("alfa" in found) == overdue, minutes_ago
        if overdue:
            assert datetime.fromisoformat(found["alfa"]["missing_since"]).astimezone(UTC) == when


def test_a_logged_in_user_who_is_not_platform_staff_is_refused(platform):  # noqa: F811
    Clinic.objects.filter(schema_name="alfa").update(backup_schedule="daily", last_backup_at=None)
    user = User.objects.create_user("usuario@psicoadmin.com", "clave-usuario-123", is_staff=False)
    platform.force_login(user)
    response = platform.get(HEALTH_URL)
    assert response.status_code == 401
    assert "overdue" not in response.json()
