"""GET/PATCH /api/admin/config/backup/: the guide's fields, validated, nothing changed on error."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.tenants.models import Clinic

URL = "/api/admin/config/backup/"


def state(schema: str = "alfa") -> tuple:
    clinic = Clinic.objects.get(schema_name=schema)
    return clinic.backup_schedule, clinic.next_scheduled_backup, clinic.time_zone


def test_get_shows_the_guides_fields_and_the_time_zone(alfa):
    body = alfa.admin_client().get(URL).json()
    assert body == {
        "backup_schedule": "disabled",
        "last_backup_at": None,
        "next_scheduled_backup": None,
        "time_zone": "UTC",
        "next_run_at": None,
        "consecutive_failures": 0,
        "last_error": "",
        "next_retry_at": None,
    }


def test_patch_daily_as_in_the_guide(alfa):
    response = alfa.admin_client().patch(URL, {"backup_schedule": "daily"}, format="json")
    assert response.status_code == 200
    assert response.json()["backup_schedule"] == "daily"
    assert state()[0] == "daily"


def test_scheduled_with_a_future_date_then_back_to_weekly_clears_it(alfa):
    client = alfa.admin_client()
    future = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    response = client.patch(
        URL, {"backup_schedule": "scheduled", "next_scheduled_backup": future.isoformat()}, format="json"
    )
    assert response.status_code == 200
    assert state()[:2] == ("scheduled", future)
    assert client.patch(URL, {"backup_schedule": "weekly"}, format="json").status_code == 200
    assert state()[:2] == ("weekly", None)


def test_a_date_without_offset_is_the_clinics_local_time(alfa):
    Clinic.objects.filter(schema_name="alfa").update(time_zone="America/Mexico_City")
    year = timezone.now().year + 1
    response = alfa.admin_client().patch(
        URL, {"backup_schedule": "scheduled", "next_scheduled_backup": f"{year}-01-15T10:00:00"}, format="json"
    )
    assert response.status_code == 200
    assert state()[1] == datetime(year, 1, 15, 16, 0, tzinfo=UTC)  # 10:00 in Mexico City (UTC-6)
    assert response.json()["next_scheduled_backup"] == f"{year}-01-15T16:00:00Z"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"backup_schedule": "hourly"}, "hourly"),
        ({"backup_schedule": "scheduled"}, "next_scheduled_backup"),  # no date
        ({"backup_schedule": "scheduled", "next_scheduled_backup": "2020-01-01T00:00:00Z"}, "fecha futura"),  # past
        ({"backup_schedule": "scheduled", "next_scheduled_backup": "mañana"}, "next_scheduled_backup"),
        # A date with any other schedule would be silently ignored: refused instead.
        ({"backup_schedule": "daily", "next_scheduled_backup": "2999-01-01T00:00:00Z"}, "solo se usa con"),
        ({"last_backup_at": "2025-01-01T00:00:00Z"}, "last_backup_at"),  # read-only
        ({"time_zone": "Asia/Tokyo"}, "time_zone"),  # the platform's decision
        ({"backup_schedule": "daily", "extra": 1}, "extra"),
        (["daily"], "objeto JSON"),
    ],
)
def test_bad_input_gives_400_and_changes_nothing(alfa, payload, named):
    before = state()
    response = alfa.admin_client().patch(URL, payload, format="json")
    assert response.status_code == 400, response.content
    # The answer says what is wrong (the field or the rule), in Spanish, whatever its shape.
    assert named in json.dumps(response.json(), ensure_ascii=False), response.json()
    assert state() == before


def test_only_the_clinic_admin(alfa):
    assert alfa.client().patch(URL, {"backup_schedule": "daily"}, format="json").status_code == 401
    staff = alfa.client()
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert staff.patch(URL, {"backup_schedule": "daily"}, format="json").status_code == 403
    assert state()[0] == "disabled"


def test_platform_sets_the_time_zone_with_a_command(alfa, capsys):
    call_command("clinic_time_zone", "alfa", "Asia/Tokyo")
    assert state()[2] == "Asia/Tokyo"
    assert "Clínica Alfa Ñandú: Asia/Tokyo" in capsys.readouterr().out
    with pytest.raises(CommandError, match="Zona horaria desconocida"):
        call_command("clinic_time_zone", "alfa", "Marte/Olympus")
    assert state()[2] == "Asia/Tokyo"
    with pytest.raises(CommandError, match="desconocida: nadie"):
        call_command("clinic_time_zone", "nadie", "UTC")
