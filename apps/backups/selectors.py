"""Reads shared by the features above services (monitoring, retention): what
the catalog says about the clinics' backup tables."""

from __future__ import annotations

from django.db import connection


def schemas_with_backup_table() -> set[str]:
    """Clinic schemas that hold a backup history table (one catalog query)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT schemaname FROM pg_tables WHERE tablename = 'backups_backuprecord'")
        return {row[0] for row in cursor.fetchall()}
