"""cleanup_old_backups over ~200 simulated days of one clinic's backups."""

import os
import zoneinfo
from datetime import datetime, time, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from apps.backups.engine.naming import backup_file_name, manifest_path_for, object_path, stored_object_name
from apps.backups.models import BackupRecord
from apps.backups.storage import get_backup_storage
from apps.tenants.models import Clinic

TZ = "America/Mexico_City"
DAYS = 200


@pytest.fixture
def clinics_reset(committed):
    yield committed
    Clinic.objects.filter(schema_name__in=["alfa", "beta"]).update(time_zone="UTC")


def make_backup(schema: str, created_at: datetime, *, backup_type="automatic", status="succeeded") -> BackupRecord:
    """A record with a small stored object and manifest, as backup_create leaves them."""
    name = backup_file_name(backup_type=backup_type, fmt="sql", schema_name=schema, when=created_at)
    path = object_path(schema, stored_object_name(name, encrypted=False))
    manifest = manifest_path_for(name, schema)
    if status == "succeeded":
        storage = get_backup_storage()
        storage.write_bytes(path, b"dump " + name.encode())
        storage.write_bytes(manifest, b"{}")
    with schema_context(schema):
        return BackupRecord.objects.create(
            file_name=name,
            file_path=path if status == "succeeded" else "",
            manifest_path=manifest if status == "succeeded" else "",
            backup_type=backup_type,
            status=status,
            created_at=created_at,
            file_size=1000,
        )


def stored_paths(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def simulate_history(now: datetime, zone) -> tuple[dict, object]:
    """200 days of nightly automatic backups (one Sunday failed), manual and failed ones."""
    today = now.astimezone(zone).date()
    made, failed_sunday = {}, None
    for days_ago in range(1, DAYS + 1):
        day = today - timedelta(days=days_ago)
        # 23:30 local: already the next day in UTC, so weeks must be the clinic's own.
        at = datetime.combine(day, time(23, 30), tzinfo=zone)
        status = "succeeded"
        if day.weekday() == 6 and 90 <= days_ago <= 100 and failed_sunday is None:
            status, failed_sunday = "failed", day  # that week's first good backup is Monday's
        made[make_backup("alfa", at, status=status).pk] = (at, "automatic", status)
    for days_ago in (150, 10):
        at = now - timedelta(days=days_ago, hours=3)
        made[make_backup("alfa", at, backup_type="manual").pk] = (at, "manual", "succeeded")
    for days_ago in (20, 5):
        at = now - timedelta(days=days_ago, hours=1)
        made[make_backup("alfa", at, status="failed").pk] = (at, "automatic", "failed")
    # A worker killed weeks ago left a 'running' record: failed by the cleanup, then old enough to go.
    at = now - timedelta(days=16)
    made[make_backup("alfa", at, status="running").pk] = (at, "automatic", "failed")
    return made, failed_sunday


def expected_kept(made: dict, now: datetime, zone) -> set[int]:
    """The rules, spelled out: manual forever; failed 14 days; automatic 30 days,
    or 183 days for the first good one of its (Sunday-started, local) week."""
    kept, weeks = set(), set()
    for pk, (at, kind, status) in sorted(made.items(), key=lambda item: item[1][0]):
        age = now - at
        if status == "failed":
            if age <= timedelta(days=14):
                kept.add(pk)
            continue
        if kind == "manual":
            kept.add(pk)
            continue
        local = at.astimezone(zone).date()
        week = local - timedelta(days=(local.weekday() + 1) % 7)
        first_of_week = week not in weeks
        weeks.add(week)
        if age <= timedelta(days=30) or (first_of_week and age <= timedelta(days=183)):
            kept.add(pk)
    return kept


OLD_ORPHAN = "alfa/auto-sql-alfa-2025-01-01-000000.sql.zst"
FRESH_ORPHAN = "alfa/auto-sql-alfa-2025-01-02-000000.sql.zst"
FOREIGN = "alfa/notas-del-operador.txt"


def make_orphans(root, now: datetime) -> None:
    """An old orphan of ours goes; a fresh one (maybe being written) and a foreign file stay."""
    storage = get_backup_storage()
    for path in (OLD_ORPHAN, FRESH_ORPHAN, FOREIGN):
        storage.write_bytes(path, b"x")
    two_days_ago = (now - timedelta(days=2)).timestamp()
    for path in (OLD_ORPHAN, FOREIGN):
        os.utime(root / path, (two_days_ago, two_days_ago))


def test_retention_over_200_days_keeps_exactly_the_expected_backups(clinics_reset, settings, capsys):
    Clinic.objects.filter(schema_name="alfa").update(time_zone=TZ)
    zone = zoneinfo.ZoneInfo(TZ)
    # One instant for the expectation and the command (--now): with each on its own clock,
    # a record on the 30/183-day boundary flipped for a few seconds a day. Local noon keeps
    # every record (made at 23:30 local, or on the hour) hours away from any boundary.
    now = datetime.combine(timezone.now().astimezone(zone).date(), time(12, 0), tzinfo=zone)
    at_now = f"--now={now.isoformat()}"
    made, failed_sunday = simulate_history(now, zone)
    beta_only = make_backup("beta", now - timedelta(days=300)).pk  # beta's newest: it stays
    root = settings.BACKUP_LOCAL_ROOT
    make_orphans(root, now)
    # Backups' objects are as old as the backups (not written just now): past the orphan grace.
    two_days_ago = (now - timedelta(days=2)).timestamp()
    for path in stored_paths(root) - {FRESH_ORPHAN}:
        os.utime(root / path, (two_days_ago, two_days_ago))
    # A schema set aside by a restore 30 days ago is dropped (restore's own hook).
    set_aside = f"beta_prev_{(now - timedelta(days=30)):%Y%m%d%H%M%S}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{set_aside}"')

    before = stored_paths(root)
    call_command("cleanup_old_backups", "--dry-run", at_now)
    dry_out = capsys.readouterr().out
    assert "simulación" in dry_out and "se borrarían" in dry_out
    assert stored_paths(root) == before
    with schema_context("alfa"):
        assert BackupRecord.objects.count() == len(made)
    assert schema_exists(set_aside)

    call_command("cleanup_old_backups", at_now)
    out = capsys.readouterr().out
    # The dry run listed exactly what the real run deleted, line for line.
    dry_lines = [line.replace("Se borraría", "Borrado") for line in dry_out.splitlines() if line.startswith("   ")]
    real_lines = [line for line in out.splitlines() if line.startswith("   ")]
    assert dry_lines == real_lines
    assert f"   Borrado el esquema {set_aside} (apartado por una restauración antes del " in out
    assert "más de 7 días)" in out
    with schema_context("alfa"):
        kept_records = list(BackupRecord.objects.all())
    expected = expected_kept(made, now, zone)
    assert {r.pk for r in kept_records} == expected
    # Sanity of the expectation itself: 30 dailies + ~22 older weekly ones + 2 manual + 1 recent failure.
    assert 50 <= len(expected) <= 60
    monday_after_failure = failed_sunday + timedelta(days=1)
    assert any(r.created_at.astimezone(zone).date() == monday_after_failure for r in kept_records)
    with schema_context("beta"):
        assert list(BackupRecord.objects.values_list("pk", flat=True)) == [beta_only]

    # Stored objects: exactly those of the kept records (object and manifest), plus the untouchables.
    referenced = {p for r in kept_records for p in (r.file_path, r.manifest_path) if p}
    beta_paths = {p for p in before if p.startswith("beta/")}
    assert stored_paths(root) == referenced | beta_paths | {FRESH_ORPHAN, FOREIGN}
    assert not schema_exists(set_aside)
    deleted = len(made) - len(expected)
    assert f"✅ Limpieza finalizada: {deleted} backup(s), 1 objeto(s) huérfano(s), 1 esquema(s) apartado(s)" in out

    # A second run has nothing left to do.
    call_command("cleanup_old_backups", at_now)
    assert "0 backup(s), 0 objeto(s) huérfano(s)" in capsys.readouterr().out
