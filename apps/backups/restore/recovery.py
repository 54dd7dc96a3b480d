"""Disaster recovery and restore drills: working from the bucket alone.

Every backup has a manifest beside it (``apps.backups.engine.manifest``), so the
storage is enough to list a clinic's backups, restore one into a database that
has lost the clinic (recreating its row and domains), rebuild its backup
history, and check that backups really restore.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from apps.backups.engine import crypto
from apps.backups.engine.naming import MANIFEST_SUFFIX, validate_schema_name
from apps.backups.engine.pipeline import open_plain
from apps.backups.engine.progress import Progress, chunks_counted
from apps.backups.errors import BackupError, RestoreError
from apps.backups.locking import clinic_lock
from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.restore.swap import (
    DRILL_MARK,
    DumpSource,
    incoming_drop,
    incoming_load_json,
    incoming_load_sql,
    restore_from_source,
    side_schema_name,
)
from apps.backups.storage import BackupStorage, get_backup_storage
from apps.tenants.models import Clinic, Domain
from apps.users.models import User

logger = logging.getLogger(__name__)


def stored_manifests(*, schema_name: str, storage: BackupStorage | None = None) -> list[dict]:
    """The manifests stored for one clinic, oldest first (unreadable ones are skipped and logged)."""
    storage = storage or get_backup_storage()
    manifests = []
    for stored in storage.list(f"{validate_schema_name(schema_name)}/"):
        if not stored.path.endswith(MANIFEST_SUFFIX):
            continue
        try:
            manifest = json.loads(storage.read_bytes(stored.path))
        except (BackupError, ValueError) as error:
            logger.warning("Manifiesto ilegible %s: %s", stored.path, error)
            continue
        if manifest.get("clinic", {}).get("schema_name") == schema_name:
            manifests.append(manifest)
    return sorted(manifests, key=lambda item: item["backup"]["created_at"])


def _source_from_manifest(manifest: dict, storage: BackupStorage):
    stored = manifest["stored"]
    encrypted = bool(stored.get("encryption"))
    return open_plain(
        storage=storage,
        path=stored["path"],
        stored_sha256=stored["sha256"],
        plain_sha256=manifest["plain"]["sha256"],
        encrypted=encrypted,
        identities=crypto.identities() if encrypted else [],
    )


def _clinic_ensure(manifest: dict) -> Clinic:
    """The clinic row and its domains, recreated from the manifest when missing.
    The schema itself is not created here: the restore brings it."""
    info = manifest["clinic"]
    clinic = Clinic.objects.filter(schema_name=info["schema_name"]).first()
    if clinic is None:
        clinic = Clinic(schema_name=info["schema_name"], name=info["name"], time_zone=info.get("time_zone") or "UTC")
        clinic.auto_create_schema = False
        clinic.save()
    for index, domain in enumerate(info.get("domains", [])):
        if not Domain.objects.filter(domain=domain).exists():
            Domain.objects.create(domain=domain, tenant=clinic, is_primary=index == 0)
    return clinic


def _manifest_progress_start(manifest: dict, progress: Progress | None) -> None:
    if progress is not None:
        rows = sum(manifest.get("row_counts", {}).values())
        progress("verifying", bytes_done=0, bytes_total=manifest["plain"]["size"], rows_done=0, rows_total=rows)


def clinic_recover_from_storage(
    *, schema_name: str, file_name: str | None = None, progress: Progress | None = None
) -> BackupRestore:
    """Restore a clinic from the bucket alone: the named backup or the newest,
    recreating the clinic row and domains if the database lost them, then
    rebuilding the backup history from the manifests."""
    storage = get_backup_storage()
    manifests = stored_manifests(schema_name=schema_name, storage=storage)
    if file_name:
        manifests = [m for m in manifests if m["backup"]["file_name"] == file_name]
    if not manifests:
        which = file_name or "ningún backup"
        raise RestoreError(f"El almacenamiento no tiene {which} para la clínica {schema_name}.")
    manifest = manifests[-1]

    @contextmanager
    def open_source():
        _manifest_progress_start(manifest, progress)
        with _source_from_manifest(manifest, storage) as chunks:
            yield DumpSource(
                format=manifest["format"],
                chunks=chunks_counted(chunks, progress),
                pg_dump_version=manifest.get("pg_dump_version") or "",
            )

    with clinic_lock(schema_name=schema_name, operation="recovery") as lock:
        clinic = _clinic_ensure(manifest)
        had_schema = schema_exists(schema_name)
        restore = BackupRestore(
            source=BackupRestore.Source.DISASTER_RECOVERY, backup_file_name=manifest["backup"]["file_name"]
        )
        restored = restore_from_source(
            clinic=clinic,
            lock=lock,
            open_source=open_source,
            restore=restore,
            keep_history_from_live=had_schema,
            progress=progress,
        )
        if progress is not None:
            progress("history")
        backup_history_rebuild(clinic=clinic, storage=storage)
    return restored


def backup_history_resync(*, clinic: Clinic, storage: BackupStorage | None = None) -> int:
    """``backup_history_rebuild`` of a clinic in service (``rebuild_backup_history``):
    beside its backups (a shared hold), never during a restore, drill or recovery,
    whose swap would set the rows it writes aside with the old schema."""
    with clinic_lock(schema_name=clinic.schema_name, operation="history", shared=True):
        return backup_history_rebuild(clinic=clinic, storage=storage)


def backup_history_rebuild(*, clinic: Clinic, storage: BackupStorage | None = None) -> int:
    """Make the clinic's BackupRecord rows agree with the manifests in storage:
    missing records are created, records of stored backups marked succeeded.
    Returns how many records were created or corrected."""
    changed = 0
    with schema_context(clinic.schema_name):
        for manifest in stored_manifests(schema_name=clinic.schema_name, storage=storage):
            backup, stored = manifest["backup"], manifest["stored"]
            values = {
                "file_path": stored["path"],
                "file_size": manifest["plain"]["size"],
                "backup_type": backup["backup_type"],
                "status": BackupRecord.Status.SUCCEEDED,
                "error": "",
                "format": manifest["format"],
                "sql_style": manifest.get("sql_style") or "",
                "fallback_reason": manifest.get("fallback_reason") or "",
                "checksum_sha256": stored["sha256"],
                "plain_sha256": manifest["plain"]["sha256"],
                "stored_size": stored["size"],
                "compression": stored.get("compression") or "",
                "encryption": stored.get("encryption") or "",
                "manifest_path": f"{clinic.schema_name}/{backup['file_name']}{MANIFEST_SUFFIX}",
                "pg_dump_version": manifest.get("pg_dump_version") or "",
                "server_version": manifest.get("server_version") or "",
                "created_at": datetime.fromisoformat(backup["created_at"]),
                "created_by": User.objects.filter(email=backup.get("created_by") or "").first(),
            }
            # A dump holds its own backup's record as it was mid-backup (running,
            # not yet named): the manifest's id finds it.
            record = (
                BackupRecord.objects.filter(file_name=backup["file_name"]).first()
                or BackupRecord.objects.filter(pk=backup["id"], file_name="").first()
            )
            if record is None:
                BackupRecord.objects.create(file_name=backup["file_name"], **values)
                changed += 1
            elif record.status != BackupRecord.Status.SUCCEEDED or record.checksum_sha256 != stored["sha256"]:
                values["file_name"] = backup["file_name"]
                for name, value in values.items():
                    setattr(record, name, value)
                record.save()
                changed += 1
    return changed


@dataclass
class DrillResult:
    schema_name: str
    file_name: str = ""
    passed: bool = False
    mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)
    error: str = ""


def restore_drill(*, clinic: Clinic, progress: Progress | None = None) -> DrillResult:
    """Restore the clinic's newest backup into a scratch schema, compare per-table
    row counts with its manifest, drop the scratch schema. The live clinic is
    not changed (the SQL replay only parks it inside a transaction).

    Holds the clinic's exclusive lock (the replay parks the live schema):
    ``ClinicBusyError`` at once if a backup, restore or recovery is running.
    Other failures are in the result."""
    with clinic_lock(schema_name=clinic.schema_name, operation="drill"):
        return _drill(clinic, progress)


def _drill(clinic: Clinic, progress: Progress | None) -> DrillResult:
    result = DrillResult(schema_name=clinic.schema_name)
    storage = get_backup_storage()
    try:
        manifests = stored_manifests(schema_name=clinic.schema_name, storage=storage)
    except BackupError as error:  # the storage refused or is down: this clinic's drill fails
        result.error = str(error)
        _drill_failure_alert(clinic, result)
        return result
    if not manifests:
        result.error = "No hay backups en el almacenamiento."
        _drill_failure_alert(clinic, result)
        return result
    manifest = manifests[-1]
    result.file_name = manifest["backup"]["file_name"]
    scratch = side_schema_name(clinic.schema_name, DRILL_MARK, timezone.now(), unique=True)
    _manifest_progress_start(manifest, progress)
    try:
        with _source_from_manifest(manifest, storage) as chunks:
            source = DumpSource(
                format=manifest["format"],
                chunks=chunks_counted(chunks, progress),
                pg_dump_version=manifest.get("pg_dump_version") or "",
            )
            if progress is not None:
                progress("loading")
            if source.format == "sql":
                incoming_load_sql(schema_name=clinic.schema_name, incoming=scratch, source=source)
            else:
                incoming_load_json(incoming=scratch, source=source)
        if progress is not None:
            progress("comparing")
        counted = _row_counts(scratch)
        expected = manifest["row_counts"]
        if source.format == "json":  # JSON carries the data apps only
            expected = {table: count for table, count in expected.items() if table in _json_tables()}
        result.mismatches = {
            table: (count, counted.get(table, -1)) for table, count in expected.items() if counted.get(table) != count
        }
        result.passed = not result.mismatches
    except BackupError as error:
        result.error = str(error)
    finally:
        connection.set_schema_to_public()
        incoming_drop(scratch)
    _drill_failure_alert(clinic, result)
    return result


def _drill_failure_alert(clinic: Clinic, result: DrillResult) -> None:
    if result.passed:
        return
    from apps.backups.alerts import drill_failure_alert

    detail = result.error or ", ".join(
        f"{table}: manifiesto {expected}, restaurado {actual}"
        for table, (expected, actual) in result.mismatches.items()
    )
    drill_failure_alert(
        schema_name=clinic.schema_name, clinic_name=clinic.name, file_name=result.file_name, detail=detail
    )


def _row_counts(schema_name: str) -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema_name])
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{validate_schema_name(schema_name)}"."{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def _json_tables() -> set[str]:
    from apps.backups.engine.dumpers import json_models

    tables = set()
    for model in json_models():
        tables.add(model._meta.db_table)
        tables |= {f.remote_field.through._meta.db_table for f in model._meta.local_many_to_many}
    return tables
