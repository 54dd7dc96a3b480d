"""What the README promises of ``cleanup_old_backups`` beyond the retention rules:
the order in which a backup goes (object → manifest → record) and what a cleanup
that stops part-way leaves; restore leftovers kept for the keep period; claims
pruned after 35 days. Run as the command, at one ``--now``."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from apps.backups.models import BackupRecord
from apps.tenants.models import ScheduledBackupClaim
from tests.backups.scheduling.test_retention import make_backup, stored_paths


def cleanup(now, *, fails: bool = False) -> None:
    arguments = ["cleanup_old_backups", f"--now={now.isoformat()}"]
    if fails:
        with pytest.raises(CommandError, match="no se pudieron borrar"):
            call_command(*arguments)
    else:
        call_command(*arguments)


def undeletable(root, path: str) -> None:
    """Put a non-empty folder where a stored object is: deleting it fails."""
    (root / path).unlink()
    (root / path / "ocupado").mkdir(parents=True)


def test_a_backup_goes_object_then_manifest_then_record_and_a_stopped_cleanup_is_finished_by_the_next(
    committed, settings
):
    root = settings.BACKUP_LOCAL_ROOT
    now = timezone.now()
    object_stuck = make_backup("beta", now - timedelta(days=300))
    manifest_stuck = make_backup("beta", now - timedelta(days=299))
    newest = make_backup("beta", now - timedelta(days=1))
    undeletable(root, object_stuck.file_path)
    undeletable(root, manifest_stuck.manifest_path)

    cleanup(now, fails=True)

    with schema_context("beta"):
        remaining = set(BackupRecord.objects.values_list("pk", flat=True))
    # The object could not go: neither did its manifest nor its record.
    assert object_stuck.pk in remaining
    assert (root / object_stuck.manifest_path).is_file()
    # The manifest could not go: its object already had, its record had not.
    assert manifest_stuck.pk in remaining
    assert not (root / manifest_stuck.file_path).exists()
    assert newest.pk in remaining

    # Whatever stopped the cleanup is gone: the next run finishes both.
    for record in (object_stuck, manifest_stuck):
        for path in (record.file_path, record.manifest_path):
            if (root / path).is_dir():
                (root / path / "ocupado").rmdir()
                (root / path).rmdir()
    cleanup(now)
    with schema_context("beta"):
        assert list(BackupRecord.objects.values_list("pk", flat=True)) == [newest.pk]
    assert stored_paths(root) == {newest.file_path, newest.manifest_path}


def test_schemas_set_aside_by_restores_are_kept_for_the_keep_period(committed, settings):
    settings.BACKUP_RESTORE_KEEP_DAYS = 7
    now = timezone.now()
    young = f"beta_prev_{(now - timedelta(days=6, hours=23)):%Y%m%d%H%M%S}"
    old = f"beta_prev_{(now - timedelta(days=7, hours=1)):%Y%m%d%H%M%S}"
    with connection.cursor() as cursor:
        for name in (young, old):
            cursor.execute(f'CREATE SCHEMA "{name}"')

    cleanup(now)

    assert schema_exists(young)
    assert not schema_exists(old)


def test_finished_claims_are_pruned_after_35_days_and_running_ones_never(committed):
    alfa = committed["alfa"].clinic
    now = timezone.now()
    claims = {
        "daily:old-succeeded": ("succeeded", 36),
        "daily:old-failed": ("failed", 36),
        "daily:recent": ("succeeded", 34),
        "daily:old-running": ("running", 40),
    }
    try:
        for slot, (status, days) in claims.items():
            at = now - timedelta(days=days)
            ScheduledBackupClaim.objects.create(
                clinic=alfa, slot=slot, status=status, worker="prueba", claimed_at=at, lease_until=at
            )

        cleanup(now)

        left = set(ScheduledBackupClaim.objects.filter(clinic=alfa).values_list("slot", flat=True))
        assert left == {"daily:recent", "daily:old-running"}
    finally:
        ScheduledBackupClaim.objects.filter(clinic=alfa).delete()
