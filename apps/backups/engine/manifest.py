"""The manifest stored beside every backup: enough to check, restore and
rebuild the history of a clinic from the bucket alone."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from apps.backups.engine.pipeline import StoredBytes
from apps.backups.engine.snapshot import SchemaSnapshot

if TYPE_CHECKING:  # the engine sits below the models: a type, not an import
    from apps.backups.models import BackupRecord

MANIFEST_VERSION = 1


def manifest_build(*, record: BackupRecord, clinic, stored: StoredBytes, snapshot: SchemaSnapshot, method=None) -> dict:
    """``method`` (an ``engine.copy_dump.DumpMethod``) says what produced the dump:
    ``ddl_cache_copy`` (cached pg_dump DDL + COPY), ``pg_dump`` or ``json``, and why."""
    return {
        "dump_method": method.as_manifest() if method is not None else None,
        "manifest_version": MANIFEST_VERSION,
        "clinic": {
            "schema_name": clinic.schema_name,
            "name": clinic.name,
            "time_zone": clinic.time_zone,
            "domains": [domain.domain for domain in clinic.domains.all()],
        },
        "backup": {
            "id": record.pk,
            "file_name": record.file_name,
            "backup_type": record.backup_type,
            "created_at": record.created_at.isoformat(),
            "created_by": record.created_by.email if record.created_by else None,
        },
        "format": record.format,
        "sql_style": record.sql_style or None,
        "fallback_reason": record.fallback_reason or None,
        "plain": {"size": stored.plain_size, "sha256": stored.plain_sha256},
        "stored": {
            "path": record.file_path,
            "size": stored.stored_size,
            "sha256": stored.stored_sha256,
            "compression": record.compression,
            "encryption": record.encryption or None,
        },
        "pg_dump_version": record.pg_dump_version or None,
        "server_version": record.server_version,
        "migrations": snapshot.migrations,
        "row_counts": snapshot.row_counts,
    }


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
