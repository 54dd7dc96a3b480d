"""run_scheduled_backups against the real database, pg_dump and storage, with ``--now``."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.backups.scheduling.selectors import backups_due
from apps.tenants.models import Clinic, ScheduledBackupClaim

NOW = datetime(2025, 11, 25, 3, 0, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def sched(committed):
    """The committed clinics, with their schedule state reset afterwards."""
    yield committed
    ScheduledBackupClaim.objects.all().delete()
    Clinic.objects.filter(schema_name__in=["alfa", "beta"]).update(
        backup_schedule="disabled",
        time_zone="UTC",
        last_backup_at=None,
        next_scheduled_backup=None,
        backup_failures=0,
        backup_retry_at=None,
        backup_last_error="",
        backup_last_attempt_at=None,
    )


def set_clinic(schema: str, **fields) -> None:
    Clinic.objects.filter(schema_name=schema).update(**fields)


def clinic(schema: str) -> Clinic:
    return Clinic.objects.get(schema_name=schema)


def run(now: datetime, *args, capsys=None) -> tuple[str, str]:
    call_command("run_scheduled_backups", "--now", now.isoformat(), *args)
    captured = capsys.readouterr() if capsys else None
    return (captured.out, captured.err) if captured else ("", "")


def records(schema: str) -> list[BackupRecord]:
    with schema_context(schema):
        return list(BackupRecord.objects.order_by("created_at"))


def test_daily_backup_prints_the_guides_lines_and_runs_once_per_day(sched, capsys):
    set_clinic("alfa", backup_schedule="daily")
    out, _ = run(NOW, capsys=capsys)
    assert out.splitlines() == [
        "⏳ Verificando backups programados...",
        "📦 Iniciando backup para: Clínica Alfa Ñandú...",
        "   -> Subido exitosamente a almacenamiento local",
        "✅ Verificación de backups finalizada: 1 correcto(s), 0 fallido(s).",
    ]
    [record] = records("alfa")
    assert record.backup_type == "automatic" and record.status == "succeeded" and record.created_by is None
    assert record.schedule_slot == "daily:2025-11-25" and record.file_name.startswith("auto-sql-alfa-")
    assert clinic("alfa").last_backup_at == NOW
    assert records("beta") == []  # disabled

    out, _ = run(NOW + timedelta(hours=20, minutes=59), capsys=capsys)  # 23:59 the same day
    assert "📦" not in out and len(records("alfa")) == 1
    run(NOW + timedelta(hours=21), capsys=capsys)  # midnight: a new day
    assert [r.schedule_slot for r in records("alfa")] == ["daily:2025-11-25", "daily:2025-11-26"]


def test_one_off_in_the_past_runs_then_disables_the_schedule(sched, capsys):
    at = NOW - timedelta(hours=5)
    set_clinic("beta", backup_schedule="scheduled", next_scheduled_backup=at)
    run(NOW - timedelta(hours=6), capsys=capsys)
    assert records("beta") == []
    run(NOW, capsys=capsys)
    [record] = records("beta")
    assert record.schedule_slot == "scheduled:2025-11-24T22:00:00Z"
    beta = clinic("beta")
    assert (beta.backup_schedule, beta.next_scheduled_backup, beta.last_backup_at) == ("disabled", None, NOW)
    run(NOW + timedelta(days=1), capsys=capsys)
    assert len(records("beta")) == 1


def test_weekly_clinic_in_tokyo_is_backed_up_on_its_sunday_and_catches_up(sched, capsys):
    set_clinic(
        "alfa",
        backup_schedule="weekly",
        time_zone="Asia/Tokyo",
        last_backup_at=datetime(2025, 11, 23, 3, 0, tzinfo=UTC),
    )
    saturday_utc = datetime(2025, 11, 29, 14, 0, tzinfo=UTC)  # Saturday 23:00 in Tokyo
    run(saturday_utc, capsys=capsys)
    assert records("alfa") == []
    run(saturday_utc + timedelta(hours=1), capsys=capsys)  # Sunday 00:00 in Tokyo
    assert [r.schedule_slot for r in records("alfa")] == ["weekly:2025-11-30"]
    run(saturday_utc + timedelta(hours=5), capsys=capsys)
    assert len(records("alfa")) == 1
    # The next Sunday is missed (no run at all); Tuesday catches it up.
    run(datetime(2025, 12, 9, 1, 0, tzinfo=UTC), capsys=capsys)
    assert [r.schedule_slot for r in records("alfa")] == ["weekly:2025-11-30", "weekly:2025-12-07"]


def test_failing_clinic_does_not_stop_the_others_and_backs_off(
    sched, settings, real_pg_dump, fake_pg_dump, capsys, caplog
):
    # pg_dump dies mid-stream for alfa only: a real failure (no JSON fallback after output started).
    fake_pg_dump(
        f"""
case "$*" in *--schema=alfa*) {real_pg_dump} "$@" | head -c 5000; exit 1;; esac
exec {real_pg_dump} "$@"
""",
    )
    set_clinic("alfa", backup_schedule="daily")
    set_clinic("beta", backup_schedule="daily")

    with caplog.at_level(logging.ERROR, logger="apps"), pytest.raises(CommandError) as raised:
        run(NOW)
    # The last word says how many succeeded and failed, not "finalizada" alone.
    assert str(raised.value).startswith("❌ Verificación de backups finalizada: 1 correcto(s), 1 fallido(s).")
    out, err = capsys.readouterr()
    assert "   -> Error en Clínica Alfa Ñandú: pg_dump" in err
    assert "Fallo consecutivo n.º 1; próximo intento desde 2025-11-25 03:05:00" in err
    assert "✅" not in out
    assert out.count("   -> Subido exitosamente a almacenamiento local") == 1
    assert "[AutoBackup] Error crítico en Clínica Alfa Ñandú: pg_dump" in caplog.text
    assert [r.status for r in records("alfa")] == ["failed"]
    assert [r.status for r in records("beta")] == ["succeeded"]
    alfa = clinic("alfa")
    assert (alfa.backup_failures, alfa.backup_retry_at, alfa.last_backup_at) == (1, NOW + timedelta(minutes=5), None)

    run(NOW + timedelta(minutes=4), capsys=capsys)  # backing off: not retried every minute
    assert len(records("alfa")) == 1
    with pytest.raises(CommandError):
        run(NOW + timedelta(minutes=5), capsys=capsys)
    alfa = clinic("alfa")
    assert (alfa.backup_failures, alfa.backup_retry_at) == (2, NOW + timedelta(minutes=15))
    assert "pg_dump" in alfa.backup_last_error

    settings.BACKUP_PG_BIN_DIR = ""  # fixed
    run(NOW + timedelta(minutes=15), capsys=capsys)
    alfa = clinic("alfa")
    assert (alfa.backup_failures, alfa.backup_retry_at, alfa.backup_last_error) == (0, None, "")
    assert alfa.last_backup_at == NOW + timedelta(minutes=15)
    assert [r.status for r in records("alfa")] == ["failed", "failed", "succeeded"]
    assert len(records("beta")) == 1  # beta's day was already done


def test_a_slot_held_by_a_live_worker_is_skipped_and_a_dead_workers_is_taken_over(sched, capsys):
    set_clinic("alfa", backup_schedule="daily")
    set_clinic("beta", backup_schedule="daily")
    real_now = timezone.now()
    common = {"slot": "daily:2025-11-25", "status": "running", "claimed_at": real_now}
    ScheduledBackupClaim.objects.create(
        clinic=clinic("alfa"), worker="otra:1:1", lease_until=real_now + timedelta(minutes=5), **common
    )
    ScheduledBackupClaim.objects.create(
        clinic=clinic("beta"), worker="muerto:2:2", lease_until=real_now - timedelta(seconds=1), **common
    )
    run(NOW, capsys=capsys)
    assert records("alfa") == []  # someone else is on it
    assert [r.schedule_slot for r in records("beta")] == ["daily:2025-11-25"]
    beta_claim = ScheduledBackupClaim.objects.get(clinic__schema_name="beta")
    assert (beta_claim.status, beta_claim.attempts) == ("succeeded", 2)
    assert not beta_claim.worker.startswith("muerto")


def test_backup_made_by_a_worker_that_died_before_recording_it_is_not_repeated(sched, capsys):
    set_clinic("alfa", backup_schedule="daily")
    with schema_context("alfa"):
        BackupRecord.objects.create(
            file_name="auto-sql-alfa-2025-11-25-030000.sql",
            backup_type="automatic",
            status="succeeded",
            schedule_slot="daily:2025-11-25",
        )
    out, _ = run(NOW, capsys=capsys)
    assert "📦" not in out
    assert len(records("alfa")) == 1
    assert clinic("alfa").last_backup_at == NOW


def test_several_workers_back_up_several_clinics(sched, capsys):
    set_clinic("alfa", backup_schedule="daily", time_zone="America/Mexico_City")
    set_clinic("beta", backup_schedule="daily", time_zone="Asia/Tokyo")
    out, _ = run(NOW, "--workers", "2", capsys=capsys)
    lines = out.splitlines()
    for name in ("Clínica Alfa Ñandú", "Clínica Beta Óptima"):
        start = lines.index(f"📦 Iniciando backup para: {name}...")
        assert lines[start + 1] == "   -> Subido exitosamente a almacenamiento local"
    # 03:00 UTC is the 24th in Mexico City and the 25th in Tokyo.
    assert [r.schedule_slot for r in records("alfa")] == ["daily:2025-11-24"]
    assert [r.schedule_slot for r in records("beta")] == ["daily:2025-11-25"]


def test_due_clinics_never_include_public_and_take_one_query(alfa):
    Clinic.objects.bulk_create(
        [
            Clinic(schema_name="public", name="Plataforma", backup_schedule="daily"),
            Clinic(schema_name="ghost_daily", name="Daily", backup_schedule="daily"),
            Clinic(schema_name="ghost_waiting", name="Backing off", backup_schedule="daily", backup_retry_at=NOW),
            Clinic(schema_name="ghost_future", name="Future", backup_schedule="scheduled", next_scheduled_backup=NOW),
        ]
    )
    with CaptureQueriesContext(connection) as queries:
        due = backups_due(now=NOW - timedelta(seconds=1))
    # django-tenants sets the search_path before every query: not a query of ours.
    assert len([q for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]) == 1
    assert [d.schema_name for d in due] == ["ghost_daily"]
    assert {d.schema_name for d in backups_due(now=NOW)} == {"ghost_daily", "ghost_waiting", "ghost_future"}


def test_bad_now_option_is_refused(sched):
    with pytest.raises(CommandError, match="zona horaria"):
        call_command("run_scheduled_backups", "--now", "2025-11-25T03:00:00")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("run_scheduled_backups", "--now", "ayer")


def test_dry_run_lists_what_would_run_and_changes_nothing(sched, capsys):
    set_clinic("alfa", backup_schedule="daily")
    future = timezone.now() + timedelta(days=3)
    call_command("run_scheduled_backups", "--dry-run", "--now", future.isoformat())
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("🔎 Simulación a las ")
    local_day = future.date().isoformat()
    assert out[1:] == [
        f"   Se respaldaría: Clínica Alfa Ñandú (alfa), turno daily:{local_day}",
        "✅ 1 clínica(s) tocan backup.",
    ]
    assert records("alfa") == [] and not ScheduledBackupClaim.objects.exists()
    assert clinic("alfa").last_backup_at is None


def test_a_real_run_refuses_a_future_instant_and_records_no_slot(sched):
    set_clinic("alfa", backup_schedule="daily")
    future = timezone.now() + timedelta(days=3)
    with pytest.raises(CommandError, match=r"aún no ha llegado.*--dry-run"):
        call_command("run_scheduled_backups", "--now", future.isoformat())
    assert records("alfa") == [] and not ScheduledBackupClaim.objects.exists()
    assert clinic("alfa").last_backup_at is None
