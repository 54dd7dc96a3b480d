"""backup_status (the guide's two queries) and the platform's health endpoint."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.backups.monitoring.status import backup_status_list
from apps.tenants.models import Clinic, Domain
from apps.users.models import User

HEALTH_URL = "/health/backups/"
PLATFORM_HOST = "plataforma.test.localhost"


@pytest.fixture
def clinics_reset(committed):
    yield committed
    Clinic.objects.filter(schema_name__in=["alfa", "beta"]).update(
        backup_schedule="disabled", last_backup_at=None, backup_failures=0, backup_retry_at=None
    )


def record(schema: str, days_ago: float, *, status="succeeded", size=0, kind="automatic") -> None:
    with schema_context(schema):
        BackupRecord.objects.create(
            file_name=f"x-{schema}-{days_ago}",
            backup_type=kind,
            status=status,
            file_size=size,
            created_at=timezone.now() - timedelta(days=days_ago),
        )


def non_set_queries(context) -> int:
    return len([q for q in context.captured_queries if not q["sql"].startswith("SET search_path")])


def test_status_shows_30_day_figures_last_backup_and_failures(clinics_reset, capsys):
    now = timezone.now()
    record("alfa", 40, size=9 * 1_048_576)  # outside the window
    record("alfa", 10, size=2 * 1_048_576)
    record("alfa", 2, size=3 * 1_048_576, kind="manual")
    record("alfa", 1, status="failed")
    Clinic.objects.filter(schema_name="alfa").update(
        backup_schedule="daily", backup_failures=2, backup_retry_at=now + timedelta(minutes=7)
    )
    with CaptureQueriesContext(connection) as queries:
        statuses = {s.schema_name: s for s in backup_status_list(now=now)}
    assert non_set_queries(queries) == 3  # clinics, catalog, one UNION over every schema

    alfa, beta = statuses["alfa"], statuses["beta"]
    assert (alfa.backups_30d, alfa.bytes_30d, alfa.failed_30d) == (2, 5 * 1_048_576, 1)
    assert alfa.last_backup_status == "failed" and alfa.last_backup_type == "automatic"
    assert now - timedelta(days=1, minutes=1) < alfa.last_backup_at < now - timedelta(hours=23)
    assert now - timedelta(days=2, minutes=1) < alfa.last_good_at < now - timedelta(days=1)
    assert alfa.consecutive_failures == 2 and alfa.next_due_at == now + timedelta(minutes=7)
    assert (beta.backups_30d, beta.last_backup_at, beta.next_due_at) == (0, None, None)

    call_command("backup_status")
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["clínica", "esquema", "frecuencia", "backups"]
    alfa_row = next(line for line in table if " alfa " in line)
    assert "daily" in alfa_row and "5.0" in alfa_row and "failed" in alfa_row and "1d 0h" in alfa_row

    call_command("backup_status", "--json")
    payload = json.loads(capsys.readouterr().out)
    by_schema = {c["schema_name"]: c for c in payload["clinics"]}
    assert by_schema["alfa"]["backups_30d"] == 2 and by_schema["alfa"]["consecutive_failures"] == 2
    assert "public" not in by_schema


def test_status_handles_clinics_without_a_schema_yet(alfa):
    Clinic.objects.bulk_create([Clinic(schema_name="sin_esquema", name="Sin esquema", backup_schedule="daily")])
    statuses = {s.schema_name: s for s in backup_status_list(now=timezone.now())}
    assert statuses["sin_esquema"].backups_30d == 0 and statuses["sin_esquema"].last_backup_at is None


@pytest.fixture
def platform(alfa, beta, settings):
    """The public tenant on its own domain, and a health token."""
    [public] = Clinic.objects.bulk_create([Clinic(schema_name="public", name="PsicoAdmin")])
    Domain.objects.create(domain=PLATFORM_HOST, tenant=public, is_primary=True)
    settings.BACKUP_HEALTH_TOKEN = "token-de-salud"
    return Client(HTTP_HOST=PLATFORM_HOST)


def test_health_needs_the_token_or_a_staff_user(platform):
    assert platform.get(HEALTH_URL).status_code == 401
    assert platform.get(HEALTH_URL, HTTP_AUTHORIZATION="Bearer otro").status_code == 401
    assert platform.get(HEALTH_URL, HTTP_AUTHORIZATION="Bearer token-de-salud").status_code == 200
    staff = User.objects.create_user("operador@psicoadmin.com", "clave-operador-123", is_staff=True)
    platform.force_login(staff)
    assert platform.get(HEALTH_URL).status_code == 200


def test_health_reports_clinics_whose_last_good_backup_is_too_old(platform, settings):
    now = timezone.now()
    Clinic.objects.filter(schema_name="alfa").update(
        backup_schedule="daily", time_zone="UTC", last_backup_at=now - timedelta(days=3), backup_failures=4
    )
    Clinic.objects.filter(schema_name="beta").update(backup_schedule="weekly", last_backup_at=now)
    response = platform.get(HEALTH_URL, HTTP_AUTHORIZATION="Bearer token-de-salud")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["clinics_checked"] == 2
    [overdue] = body["overdue"]
    assert set(overdue) == {
        "schema_name",
        "name",
        "backup_schedule",
        "last_backup_at",
        "missing_since",
        "consecutive_failures",
        "next_retry_at",
    }
    assert (overdue["schema_name"], overdue["name"], overdue["consecutive_failures"]) == (
        "alfa",
        "Clínica Alfa Ñandú",
        4,
    )
    # Missing since the day after its last backup, not merely since today.
    missing = (now - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert overdue["missing_since"] == missing.isoformat()

    Clinic.objects.filter(schema_name="alfa").update(last_backup_at=now)
    body = platform.get(HEALTH_URL, HTTP_AUTHORIZATION="Bearer token-de-salud").json()
    assert (body["status"], body["overdue"]) == ("ok", [])
