"""An interrupted backup's temporary object goes with its record, in the same
run, however recently it was last written; a live backup's is left alone."""

import os
from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.backups.services import backup_create


def test_a_crashed_backups_temporary_goes_with_its_record_and_a_live_ones_stays(committed, settings):
    clinic = committed["beta"].clinic
    folder = settings.BACKUP_LOCAL_ROOT / "beta"
    folder.mkdir(parents=True)
    now = timezone.now()
    # Killed 7 hours after it started (its record is stale after 6 h): its temporary
    # was last written an hour ago, younger than the stale threshold.
    dead = folder / ".tmp-0123abcd0123abcd0123abcd0123abcd-backup-sql-beta-2020-01-01-000000.sql.zst"
    dead.write_bytes(b"partial")
    an_hour_ago = (now - timedelta(hours=1)).timestamp()
    os.utime(dead, (an_hour_ago, an_hour_ago))
    # Another backup of the clinic, running now (started 2 minutes ago, writing).
    live = folder / ".tmp-4567cdef4567cdef4567cdef4567cdef-backup-sql-beta-2020-01-02-000000.sql.zst"
    live.write_bytes(b"being written")
    with schema_context("beta"):
        # As backup_create leaves them: named (file_path) before the write starts.
        crashed = BackupRecord.objects.create(
            file_name="backup-sql-beta-2020-01-01-000000.sql",
            file_path="beta/backup-sql-beta-2020-01-01-000000.sql.zst",
            backup_type="manual",
            created_at=now - timedelta(hours=8),
        )
        running = BackupRecord.objects.create(
            file_name="backup-sql-beta-2020-01-02-000000.sql",
            file_path="beta/backup-sql-beta-2020-01-02-000000.sql.zst",
            backup_type="manual",
            created_at=now - timedelta(minutes=2),
        )

    backup_create(clinic=clinic, backup_type="manual")

    with schema_context("beta"):
        crashed.refresh_from_db()
        running.refresh_from_db()
    assert crashed.status == "failed" and not dead.exists()
    assert running.status == "running" and live.exists()
