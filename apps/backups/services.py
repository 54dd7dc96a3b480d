"""Making and reading clinic backups.

``backup_create`` is the one way a backup is made (API, operator command, cron).
A record is ``succeeded`` only once the stored object and its manifest are in
the storage, the object's checksum has been read back and verified, and (COPY
style) every table's COPY rows equal the snapshot's count; any failure leaves
a ``failed`` record and no object under its final name. Backups hold the
clinic's lock in shared mode (``apps.backups.locking``): several backups of a
clinic may run together, never beside a restore, drill or recovery of it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.ddl_cache.store import DatabaseDdlCache
from apps.backups.engine import crypto
from apps.backups.engine.copy_dump import DumpMethod, sql_dump_stream
from apps.backups.engine.copy_rows import CopyRowCounter, copy_counts_check, row_counts_check
from apps.backups.engine.dumpers import json_dump_chunks
from apps.backups.engine.manifest import manifest_build, manifest_bytes
from apps.backups.engine.naming import (
    backup_file_name,
    manifest_path_for,
    object_path,
    stored_object_name,
    validate_schema_name,
)
from apps.backups.engine.pg_clients import find_client, server_major, server_version_text
from apps.backups.engine.pg_messages import pg_values_removed
from apps.backups.engine.pipeline import StoredBytes, open_plain, store_stream, verify_stored
from apps.backups.engine.progress import Progress, progress_noop, reader_counted
from apps.backups.engine.snapshot import SchemaSnapshot, schema_snapshot
from apps.backups.engine.streams import IterableReader
from apps.backups.errors import (
    BackupError,
    BackupNotAvailableError,
    BackupNotDeletableError,
    BackupTooLargeError,
    DumpError,
    size_text,
)
from apps.backups.locking import ClinicLock, clinic_lock
from apps.backups.models import BackupDownload, BackupRecord
from apps.backups.storage import BackupStorage, get_backup_storage

logger = logging.getLogger(__name__)

COMPRESSION = "zstd"


def backup_create(
    *, clinic, backup_type: str, user=None, max_size: int | None = None, progress: Progress | None = None
) -> BackupRecord:
    """Back up one clinic's schema now and return its (succeeded) record.

    ``max_size`` bounds the plain dump (API backups): over it, ``BackupTooLargeError``
    is raised and nothing is kept. ``ClinicBusyError`` at once, with no record,
    while a restore, drill or recovery of the clinic runs. Other failures raise
    a ``BackupError`` after recording them on a ``failed`` record. ``progress``
    (``apps.backups.engine.progress``) hears the phase, the plain bytes dumped so
    far and, at the end, the totals.
    """
    schema_name = validate_schema_name(clinic.schema_name)
    if schema_name == settings.PUBLIC_SCHEMA_NAME:
        raise BackupError("El esquema public no se respalda.")
    with clinic_lock(schema_name=schema_name, operation="backup", shared=True) as lock:
        return _backup_create_locked(
            clinic=clinic, lock=lock, backup_type=backup_type, user=user, max_size=max_size, progress=progress
        )


def _backup_create_locked(
    *, clinic, lock: ClinicLock, backup_type: str, user, max_size: int | None, progress: Progress | None
) -> BackupRecord:
    schema_name = clinic.schema_name
    storage = get_backup_storage()
    recipients = crypto.recipients()
    with schema_context(schema_name):
        try:
            stale_backups_fail(storage=storage, schema_name=schema_name)
        except BackupError as error:
            # Housekeeping: it must not stop the backup (the next one tries again).
            logger.warning("No se pudieron limpiar backups interrumpidos de %s: %s", schema_name, error)
        record = BackupRecord.objects.create(
            file_name="",
            backup_type=backup_type,
            created_by=user,
            created_at=timezone.now(),
            compression=COMPRESSION,
            encryption="age" if recipients else "",
            server_version=server_version_text(connection),
        )
    try:
        _dump_and_store(
            record=record,
            clinic=clinic,
            lock=lock,
            storage=storage,
            recipients=recipients,
            max_size=max_size,
            progress=progress,
        )
    except BackupTooLargeError:
        _discard(record, storage)
        with schema_context(schema_name):
            record.delete()
        raise
    except BaseException as error:
        _discard(record, storage)
        message = _failure_message(error)
        _failure_record(record, schema_name, message)
        if isinstance(error, BackupError) or not isinstance(error, Exception):
            raise
        raise BackupError(message) from error
    if user is not None:
        logger.info("Backup manual creado por %s (ID: %s)", user.email, record.pk)
    return record


def _dump_and_store(
    *,
    record: BackupRecord,
    clinic,
    lock: ClinicLock,
    storage: BackupStorage,
    recipients: list,
    max_size,
    progress: Progress | None,
) -> None:
    schema_name = clinic.schema_name
    report = progress or progress_noop
    report("dumping")
    options = {"storage": storage, "recipients": recipients, "max_size": max_size}
    counted, json_counts = None, None
    with schema_snapshot(schema_name) as snapshot:
        stored = None
        try:
            client = find_client("pg_dump", min_major=server_major(connection))
        except DumpError as error:
            record.fallback_reason = str(error)
        else:
            record.sql_style = settings.BACKUP_SQL_STYLE
            # The cached-DDL dump (cost of this clinic only) or pg_dump (see engine/copy_dump.py).
            with sql_dump_stream(
                client=client,
                schema_name=schema_name,
                sql_style=record.sql_style,
                snapshot_id=snapshot.snapshot_id,
                ddl_cache=DatabaseDdlCache(),
            ) as (output, method):
                # The pg_dump that wrote the DDL: the psql replaying it must be at least as new.
                record.pg_dump_version = method.pg_dump_version
                # The plain stream, whatever dumper wrote it: COPY blocks are counted as they pass.
                counted = CopyRowCounter(output) if record.sql_style == "copy" else None
                source = counted or output
                try:
                    stored = _store(record, schema_name, "sql", reader_counted(source, progress), **options)
                except DumpError as error:
                    if output.bytes_read:
                        raise  # died mid-stream: a real failure, not a reason to change format
                    record.fallback_reason = str(error)
        if stored is None:
            counted = None
            logger.warning("Backup de %s en JSON: %s", schema_name, record.fallback_reason)
            record.pg_dump_version, record.sql_style = "", ""
            method = DumpMethod(method="json", reason=record.fallback_reason)
            json_counts = {}
            source = IterableReader(
                json_dump_chunks(schema_name=schema_name, snapshot_id=snapshot.snapshot_id, counts=json_counts)
            )
            stored = _store(record, schema_name, "json", reader_counted(source, progress), **options)
    # The snapshot's counts are complete only now. The JSON holds the clinic data
    # apps' tables only: those are compared.
    if counted is not None:
        copy_counts_check(counted=counted, expected=snapshot.row_counts, schema_name=schema_name)
    elif json_counts is not None:
        expected = {table: snapshot.row_counts.get(table, 0) for table in json_counts}
        row_counts_check(counts=json_counts, expected=expected, schema_name=schema_name)
    rows = sum(snapshot.row_counts.values())
    report("verifying", bytes_done=stored.plain_size, bytes_total=stored.plain_size, rows_done=rows, rows_total=rows)
    verify_stored(storage=storage, path=record.file_path, expected_sha256=stored.stored_sha256)
    _manifest_store(record=record, clinic=clinic, storage=storage, stored=stored, snapshot=snapshot, method=method)
    lock.ensure_held()
    with schema_context(schema_name):
        _finish(record, status=BackupRecord.Status.SUCCEEDED)


def _store(record: BackupRecord, schema_name: str, fmt: str, source, *, storage, recipients, max_size) -> StoredBytes:
    record.format = fmt
    _assign_file_name(record, schema_name, storage)
    stored = store_stream(
        source=source,
        storage=storage,
        path=record.file_path,
        recipients=recipients,
        level=settings.BACKUP_ZSTD_LEVEL,
        limit=max_size,
        on_limit=lambda: BackupTooLargeError(f"Backup demasiado grande: supera el límite de {size_text(max_size)}."),
    )
    record.file_size = stored.plain_size
    record.stored_size = stored.stored_size
    record.plain_sha256 = stored.plain_sha256
    record.checksum_sha256 = stored.stored_sha256
    return stored


def _assign_file_name(record: BackupRecord, schema_name: str, storage: BackupStorage) -> None:
    """The guide's name, made unique within the clinic (two backups in one second get ``-2``).

    The database claims it: the unique constraint on ``file_name`` decides
    between backups racing for the same name, and the loser tries the next one.
    """
    encrypted = bool(record.encryption)
    with schema_context(schema_name):
        for sequence in range(1, 100):
            name = backup_file_name(
                backup_type=record.backup_type,
                fmt=record.format,
                schema_name=schema_name,
                when=record.created_at,
                sequence=sequence,
            )
            path = object_path(schema_name, stored_object_name(name, encrypted=encrypted))
            if storage.exists(path):
                continue  # an object without a record (e.g. before a history rebuild)
            manifest_path = manifest_path_for(name, schema_name)
            try:
                with transaction.atomic():
                    BackupRecord.objects.filter(pk=record.pk).update(
                        file_name=name, file_path=path, format=record.format, manifest_path=manifest_path
                    )
            except IntegrityError:
                continue  # another backup of this clinic holds the name
            record.file_name, record.file_path, record.manifest_path = name, path, manifest_path
            return
    raise BackupError(f"No hay un nombre libre para el backup de {schema_name}.")


def _manifest_store(
    *, record, clinic, storage, stored: StoredBytes, snapshot: SchemaSnapshot, method: DumpMethod
) -> None:
    with schema_context(clinic.schema_name):
        manifest = manifest_build(record=record, clinic=clinic, stored=stored, snapshot=snapshot, method=method)
    storage.write_bytes(record.manifest_path, manifest_bytes(manifest))


def _failure_message(error: BaseException) -> str:
    """The record's (and the operators') text of a failure. Our own errors are
    already clean; a database's or an unexpected one may quote row values."""
    if isinstance(error, BackupError):
        return str(error)
    if isinstance(error, DatabaseError):
        lines = str(error).strip().splitlines()
        first = lines[0] if lines else type(error).__name__
        return pg_values_removed(f"Error de la base de datos durante el backup: {first}")
    return pg_values_removed(f"Error inesperado: {error!r}")


def _failure_record(record: BackupRecord, schema_name: str, message: str) -> None:
    """Mark the record failed, on a new connection if the failure took ours with it."""
    for attempt in (1, 2):
        try:
            with schema_context(schema_name):
                _finish(record, status=BackupRecord.Status.FAILED, error=message)
            return
        except DatabaseError:
            if attempt == 2:
                # It stays ``running``; the clinic's next backup marks it failed once stale.
                logger.exception("No se pudo marcar como fallido el backup %s de %s", record.pk, schema_name)
                return
            connection.close()  # Django connects again on the next query


def _finish(record: BackupRecord, *, status: str, error: str = "") -> None:
    record.status = status
    record.error = error
    record.finished_at = timezone.now()
    record.duration = record.finished_at - record.created_at
    record.save()


def _discard(record: BackupRecord, storage: BackupStorage) -> None:
    """Remove whatever a failed backup stored: nothing may pass for a good backup."""
    for path in (record.file_path, record.manifest_path):
        if path:
            try:
                storage.delete(path)
            except BackupError:
                logger.exception("No se pudo borrar %s tras un backup fallido", path)


def stale_backups_fail(*, storage: BackupStorage, schema_name: str) -> int:
    """Mark ``running`` records whose worker died as failed, remove their objects
    and the temporaries of their interrupted writes. Runs in the clinic's schema."""
    limit = timezone.now() - timedelta(minutes=settings.BACKUP_STALE_AFTER_MINUTES)
    stale = list(BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING, created_at__lt=limit))
    for record in stale:
        _discard(record, storage)
        _finish(record, status=BackupRecord.Status.FAILED, error="Interrumpido: el proceso terminó sin completarlo.")
    # After failing them: the dead backups' temporaries go with their records in this
    # run, however recently they were last written (their paths are now finished).
    storage.abandoned_writes_remove(f"{schema_name}/", **_abandoned_writes_scope(limit))
    return len(stale)


def backup_delete(*, record: BackupRecord, storage: BackupStorage) -> None:
    """Stored object, then manifest, then the record (in the current clinic schema):
    a record never points at nothing; an interruption leaves at worst an orphan
    object, which retention sweeps."""
    for path in (record.file_path, record.manifest_path):
        if path:
            storage.delete(path)
    record.delete()


def newest_good_backup_id() -> int | None:
    """The current clinic's newest succeeded backup: the one that is never deleted."""
    return (
        BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )


def manual_backup_delete(*, clinic, backup_id: int, user) -> BackupRecord:
    """Delete one of the clinic's manual backups on an administrator's request.

    Refused (``BackupNotDeletableError``) for automatic backups (retention owns
    them), for one still running, and for the clinic's newest good backup.
    ``DoesNotExist`` for ids of other clinics.
    """
    storage = get_backup_storage()
    with schema_context(clinic.schema_name), transaction.atomic():
        # Locked so two deletions (or a deletion and a restore's history copy) do not interleave.
        record = BackupRecord.objects.select_for_update().get(pk=backup_id)
        if record.backup_type != "manual":
            raise BackupNotDeletableError(
                "Solo se pueden eliminar backups manuales; los automáticos los borra la retención."
            )
        if record.status == BackupRecord.Status.RUNNING and not record.is_stale:
            raise BackupNotDeletableError("Este backup aún está en curso.")
        if record.pk == newest_good_backup_id():
            raise BackupNotDeletableError("Es el backup correcto más reciente de la clínica: no se puede eliminar.")
        backup_delete(record=record, storage=storage)
    logger.info("Backup manual %s (%s) eliminado por %s", backup_id, record.file_name, getattr(user, "email", "—"))
    return record


def abandoned_writes_find(*, storage: BackupStorage, schema_name: str) -> list[str]:
    """What :func:`stale_backups_fail` would remove as left over by interrupted writes
    (in the clinic's schema): temporaries and open uploads older than the stale limit,
    and at any age those of backups already marked failed (provably abandoned)."""
    limit = timezone.now() - timedelta(minutes=settings.BACKUP_STALE_AFTER_MINUTES)
    return storage.abandoned_writes(f"{schema_name}/", **_abandoned_writes_scope(limit))


def _abandoned_writes_scope(limit) -> dict:
    # A failed backup's name is never given to another one (unique file_name), so a
    # write still open under it belongs to a process that gave up or died.
    failed = BackupRecord.objects.filter(status=BackupRecord.Status.FAILED).values_list("file_path", "manifest_path")
    return {"older_than": limit, "finished_paths": {path for pair in failed for path in pair if path}}


def backup_get_available(*, backup_id: int) -> BackupRecord:
    """A succeeded backup of the current clinic (``DoesNotExist`` for other ids)."""
    record = BackupRecord.objects.get(pk=backup_id)
    if record.status != BackupRecord.Status.SUCCEEDED:
        raise BackupNotAvailableError("Este backup no está disponible: no se completó correctamente.")
    return record


@contextmanager
def backup_open_plain(*, record: BackupRecord) -> Iterator[Iterator[bytes]]:
    """The plain ``.sql``/``.json`` of a succeeded backup, as verified chunks."""
    storage = get_backup_storage()
    with open_plain(
        storage=storage,
        path=record.file_path,
        stored_sha256=record.checksum_sha256,
        plain_sha256=record.plain_sha256,
        encrypted=record.is_encrypted,
        identities=crypto.identities() if record.is_encrypted else [],
    ) as chunks:
        yield chunks


def backup_download_record(
    *, clinic, record: BackupRecord, user, ip_address: str | None, user_agent: str
) -> BackupDownload:
    # In the clinic's schema explicitly: this runs while the response streams.
    with schema_context(clinic.schema_name):
        return BackupDownload.objects.create(
            backup=record, user=user, ip_address=ip_address or None, user_agent=user_agent[:255]
        )
