"""Data migrations of the backup history, run against real rows."""

import importlib

from django.apps import apps
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord

unique_file_names = importlib.import_module("apps.backups.migrations.0003_unique_file_names")


def test_records_that_shared_a_name_are_detached_except_the_newest(alfa):
    with schema_context("alfa"):
        with connection.cursor() as cursor:  # the rows the constraint now forbids, as they were before it
            cursor.execute("DROP INDEX backup_file_name_unique")
        shared = dict(file_name="backup-sql-alfa-2025-11-25-140530.sql", backup_type="manual", status="succeeded")
        paths = dict(file_path="alfa/backup-sql-alfa-2025-11-25-140530.sql.zst", manifest_path="alfa/m.json")
        older, newest = (BackupRecord.objects.create(**shared, **paths) for _ in range(2))
        other = BackupRecord.objects.create(
            file_name="backup-sql-alfa-2025-11-25-150000.sql", backup_type="manual", status="succeeded", **paths
        )

        unique_file_names.shared_names_detach(apps, None)

        for record in (older, newest, other):
            record.refresh_from_db()
        assert older.status == "failed" and older.error == unique_file_names.SHARED_NAME_ERROR
        assert older.file_name == f"{shared['file_name']}-sobrescrito-{older.pk}"
        assert older.file_path == older.manifest_path == ""  # its cleanup cannot delete the newest's object
        for kept in (newest, other):
            assert kept.status == "succeeded" and kept.file_path == paths["file_path"]
        assert newest.file_name == shared["file_name"]
