"""Restoring a clinic from a backup, atomically.

The backup is first loaded beside the live clinic, into an *incoming* schema:

- SQL: one psql transaction renames the live schema aside, replays the dump
  (which recreates the clinic's schema), renames the result to the incoming
  name and the live schema back. The live clinic is never changed here.
- JSON: a fresh schema gets every migration, then ``loaddata``.

The incoming schema is migrated forward (a backup made before newer
migrations), then one transaction copies the clinic's backup history into it,
moves the live schema aside under a dated *previous* name and renames the
incoming schema to the clinic's. If anything fails before that commit, the
live clinic is exactly as it was; the previous schema keeps the state before
the restore for ``BACKUP_RESTORE_KEEP_DAYS`` (dropped by cleanup_old_backups).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from apps.backups.engine.naming import validate_schema_name
from apps.backups.engine.pg_clients import find_client, server_major
from apps.backups.engine.psql import psql_run
from apps.backups.errors import BackupError, RestoreError, size_text
from apps.backups.models import BackupDownload, BackupRecord, BackupRestore

logger = logging.getLogger(__name__)

INCOMING_MARK = "_in_"
PREVIOUS_MARK = "_prev_"
_LEFTOVER_RE = re.compile(
    rf"^(?P<schema>[a-z_][a-z0-9_]*?)(?P<mark>{INCOMING_MARK}|{PREVIOUS_MARK})(?P<stamp>\d{{14}})$"
)
# History is the clinic's record of backups: it survives any restore.
HISTORY_MODELS = (BackupRecord, BackupDownload, BackupRestore)
USER_COLUMNS = {"created_by_id", "user_id", "requested_by_id"}


@dataclass(frozen=True)
class DumpSource:
    """A verified plain dump to restore: its format and its chunks."""

    format: str  # "sql" | "json"
    chunks: Iterable[bytes]
    pg_dump_version: str = ""


def side_schema_name(schema_name: str, mark: str, when: datetime) -> str:
    return f"{schema_name[:40]}{mark}{when:%Y%m%d%H%M%S}"


def _quote(name: str) -> str:
    return '"' + validate_schema_name(name) + '"'


# Loading into the incoming schema ------------------------------------------------


def incoming_load_sql(*, schema_name: str, incoming: str, source: DumpSource) -> None:
    """Replay a plain dump of ``schema_name`` so that it lands in ``incoming``,
    in one psql transaction that leaves the live schema as it was."""
    live_exists = schema_exists(schema_name)
    parking = side_schema_name(schema_name, "_park_", timezone.now())
    before = f"ALTER SCHEMA {_quote(schema_name)} RENAME TO {_quote(parking)};\n" if live_exists else ""
    after = f"\n;ALTER SCHEMA {_quote(schema_name)} RENAME TO {_quote(incoming)};\n"
    if live_exists:
        after += f"ALTER SCHEMA {_quote(parking)} RENAME TO {_quote(schema_name)};\n"
    dump_major = int(source.pg_dump_version.split(".")[0]) if source.pg_dump_version else 0
    # A psql at least as new as the pg_dump that wrote the dump (\restrict lines).
    client = find_client("psql", min_major=max(dump_major, server_major(connection)))
    psql_run(client=client, chunks=_framed(before.encode(), source.chunks, after.encode()))


def _framed(head: bytes, chunks: Iterable[bytes], tail: bytes) -> Iterator[bytes]:
    yield head
    yield from chunks
    yield tail


def incoming_load_json(*, incoming: str, source: DumpSource) -> None:
    """Create ``incoming`` with every migration and load the JSON into it."""
    _incoming_create_and_migrate(incoming)
    with schema_context(incoming), transaction.atomic():
        try:
            # Django's JSON deserializer reads the whole document anyway.
            text = b"".join(source.chunks).decode("utf-8")
            objects = serializers.deserialize("json", text, ignorenonexistent=False)
            for obj in objects:
                obj.save()
        except serializers.base.DeserializationError as error:
            raise RestoreError(f"El JSON del backup no se puede cargar: {error}") from None
        _sequences_reset()


def _incoming_create_and_migrate(incoming: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {_quote(incoming)}")
    migrate_forward(incoming)


def migrate_forward(schema_name: str) -> None:
    """Apply the code's migrations to a schema holding an older (or current) state.

    Skipped when the schema already has every migration of the code: the
    migrate command introspects the catalog (Django's table list scans the whole
    of ``pg_class``, a million rows at 5,000 clinics) even with nothing to do.
    """
    if not migrations_pending(schema_name):
        return
    call_command("migrate_schemas", schema_name=schema_name, tenant=True, interactive=False, verbosity=0)
    connection.set_schema_to_public()


def migrations_pending(schema_name: str) -> bool:
    """Whether the code has migrations the schema's ``django_migrations`` lacks
    (read from disk and from that one table: no catalog-wide introspection)."""
    from django.db.migrations.loader import MigrationLoader

    table = f"{_quote(schema_name)}.django_migrations"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if not cursor.fetchone()[0]:
            return True
        cursor.execute(f"SELECT app, name FROM {table}")
        applied = set(cursor.fetchall())
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return not set(graph.nodes) <= applied


def _sequences_reset() -> None:
    from django.apps import apps

    models = [model for label in settings.CLINIC_DATA_APPS for model in apps.get_app_config(label).get_models()]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


# Swapping it in ---------------------------------------------------------------------


def swap_in(
    *, schema_name: str, incoming: str, restore: BackupRestore, keep_history_from_live: bool = True
) -> BackupRestore:
    """One transaction: history copied in, live schema set aside, incoming renamed
    to the clinic's schema, the restore recorded. Returns the saved restore row."""
    now = timezone.now()
    previous = side_schema_name(schema_name, PREVIOUS_MARK, now) if schema_exists(schema_name) else ""
    with transaction.atomic(), connection.cursor() as cursor:
        if previous and keep_history_from_live:
            _history_copy(cursor, source=schema_name, target=incoming)
        if previous:
            cursor.execute(f"ALTER SCHEMA {_quote(schema_name)} RENAME TO {_quote(previous)}")
        cursor.execute(f"ALTER SCHEMA {_quote(incoming)} RENAME TO {_quote(schema_name)}")
        with schema_context(schema_name):
            restore.previous_schema = previous
            restore.status = BackupRestore.Status.SUCCEEDED
            restore.finished_at = timezone.now()
            if restore.backup_id and not BackupRecord.objects.filter(pk=restore.backup_id).exists():
                restore.backup = None  # disaster recovery: the record comes back with the history rebuild
            restore.save(force_insert=True)
    ContentType.objects.clear_cache()
    return restore


def _history_copy(cursor, *, source: str, target: str) -> None:
    """Replace the incoming history with the live one; links to users that the
    restored data does not have become NULL (the row itself is kept)."""
    for model in reversed(HISTORY_MODELS):
        cursor.execute(f"DELETE FROM {_quote(target)}.{model._meta.db_table}")
    for model in HISTORY_MODELS:
        table = model._meta.db_table
        columns = [field.column for field in model._meta.concrete_fields]
        selected = [
            f"CASE WHEN EXISTS (SELECT 1 FROM {_quote(target)}.users_user u WHERE u.id = h.{column}) "
            f"THEN h.{column} END"
            if column in USER_COLUMNS
            else f"h.{column}"
            for column in columns
        ]
        cursor.execute(
            f"INSERT INTO {_quote(target)}.{table} ({', '.join(columns)}) "
            f"SELECT {', '.join(selected)} FROM {_quote(source)}.{table} h"
        )
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{_quote(target)}.{table}', 'id'), "
            f"coalesce((SELECT max(id) FROM {_quote(target)}.{table}), 0) + 1, false)"
        )


def incoming_drop(incoming: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {_quote(incoming)} CASCADE")


def restore_from_source(
    *, clinic, source: DumpSource, restore: BackupRestore, keep_history_from_live: bool = True
) -> BackupRestore:
    """Load, migrate forward and swap in; on failure the live clinic is untouched,
    the failure is recorded in its history and ``RestoreError`` is raised."""
    schema_name = validate_schema_name(clinic.schema_name)
    incoming = side_schema_name(schema_name, INCOMING_MARK, timezone.now())
    started = timezone.now()
    try:
        if source.format == "sql":
            incoming_load_sql(schema_name=schema_name, incoming=incoming, source=source)
            migrate_forward(incoming)
        elif source.format == "json":
            incoming_load_json(incoming=incoming, source=source)
        else:
            raise RestoreError(f"Formato de backup desconocido: {source.format!r}")
        restore.started_at = started
        restored = swap_in(
            schema_name=schema_name,
            incoming=incoming,
            restore=restore,
            keep_history_from_live=keep_history_from_live,
        )
    except BaseException as error:
        connection.set_schema_to_public()
        incoming_drop(incoming)
        message = str(error) if isinstance(error, BackupError) else f"Error inesperado: {error!r}"
        if schema_exists(schema_name):
            with schema_context(schema_name):
                BackupRestore.objects.create(
                    source=restore.source,
                    backup_id=restore.backup_id,
                    backup_file_name=restore.backup_file_name,
                    uploaded_file_name=restore.uploaded_file_name,
                    uploaded_sha256=restore.uploaded_sha256,
                    requested_by_id=restore.requested_by_id,
                    started_at=started,
                    finished_at=timezone.now(),
                    status=BackupRestore.Status.FAILED,
                    error=message,
                )
        logger.error("Restauración de %s fallida: %s", schema_name, message)
        _restore_failure_alert(schema_name=schema_name, file_name=restore.backup_file_name, message=message)
        if isinstance(error, RestoreError) or not isinstance(error, Exception):
            raise
        raise RestoreError(message) from error
    logger.info(
        "Clínica %s restaurada (%s); estado anterior en %s",
        schema_name,
        restore.source,
        restored.previous_schema or "—",
    )
    return restored


# Leftovers ------------------------------------------------------------------------------


def restore_leftover_schemas(*, older_than: datetime) -> list[str]:
    """Set-aside (previous) and abandoned incoming schemas older than ``older_than``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        names = [row[0] for row in cursor.fetchall()]
    leftovers = []
    for name in names:
        match = _LEFTOVER_RE.match(name)
        if match:
            stamp = datetime.strptime(match["stamp"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            if stamp < older_than:
                leftovers.append(name)
    return sorted(leftovers)


def restore_leftover_schemas_drop(*, older_than: datetime | None = None, dry_run: bool = False) -> list[str]:
    """Drop what restores set aside once it is older than BACKUP_RESTORE_KEEP_DAYS."""
    if older_than is None:
        older_than = timezone.now() - timedelta(days=settings.BACKUP_RESTORE_KEEP_DAYS)
    leftovers = restore_leftover_schemas(older_than=older_than)
    if not dry_run:
        for name in leftovers:
            incoming_drop(name)
    return leftovers


# Entry points ---------------------------------------------------------------------------


def backup_restore(*, clinic, record: BackupRecord, user=None) -> BackupRestore:
    """Restore ``clinic`` from one of its own succeeded backups (stored checksum
    verified before anything runs)."""
    from apps.backups.services import backup_open_plain

    restore = BackupRestore(
        source=BackupRestore.Source.BACKUP, backup=record, backup_file_name=record.file_name, requested_by=user
    )
    try:
        with backup_open_plain(record=record) as chunks:
            source = DumpSource(format=record.format, chunks=chunks, pg_dump_version=record.pg_dump_version)
            return restore_from_source(clinic=clinic, source=source, restore=restore)
    except RestoreError:
        raise  # restore_from_source recorded it and told the operators
    except BackupError as error:  # the stored object failed its check before anything ran
        _restore_failure_alert(schema_name=clinic.schema_name, file_name=record.file_name, message=str(error))
        raise


def upload_restore(*, clinic, uploaded_file, user=None) -> BackupRestore:
    """Restore from an uploaded ``.sql``/``.json`` only if this system produced it
    for this clinic: its SHA-256 must be that of one of the clinic's succeeded
    backups. Anything else is refused before a single statement runs."""
    if uploaded_file.size > settings.MAX_RESTORE_UPLOAD_SIZE:
        raise RestoreError(_too_large_message())
    digest = hashlib.sha256()
    for chunk in uploaded_file.chunks():
        digest.update(chunk)
    sha256 = digest.hexdigest()
    with schema_context(clinic.schema_name):
        record = (
            BackupRecord.objects.filter(plain_sha256=sha256, status=BackupRecord.Status.SUCCEEDED)
            .order_by("-created_at")
            .first()
        )
    if record is None:
        raise RestoreError(
            "El archivo no corresponde a ningún backup de esta clínica (o fue modificado): no se restauró nada."
        )
    restore = BackupRestore(
        source=BackupRestore.Source.UPLOAD,
        backup=record,
        backup_file_name=record.file_name,
        uploaded_file_name=(uploaded_file.name or "")[:255],
        uploaded_sha256=sha256,
        requested_by=user,
    )
    uploaded_file.seek(0)
    source = DumpSource(format=record.format, chunks=uploaded_file.chunks(), pg_dump_version=record.pg_dump_version)
    return restore_from_source(clinic=clinic, source=source, restore=restore)


def _too_large_message() -> str:
    return f"Archivo demasiado grande: el límite es {size_text(settings.MAX_RESTORE_UPLOAD_SIZE)}."


def upload_size_check(content_length: str | None) -> None:
    """Refuse an oversized upload from its declared length, before reading it."""
    try:
        declared = int(content_length or 0)
    except ValueError:
        raise RestoreError("Cabecera Content-Length no válida.") from None
    if declared > settings.MAX_RESTORE_UPLOAD_SIZE:
        raise RestoreError(_too_large_message())


def last_restore_at() -> datetime | None:
    """When the current clinic was last restored (tokens issued before it are void)."""
    return (
        BackupRestore.objects.filter(status=BackupRestore.Status.SUCCEEDED)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )


def _restore_failure_alert(*, schema_name: str, file_name: str, message: str) -> None:
    from apps.backups.monitoring.alerts import restore_failure_alert
    from apps.tenants.models import Clinic

    clinic = Clinic.objects.filter(schema_name=schema_name).first()
    restore_failure_alert(
        schema_name=schema_name, clinic_name=clinic.name if clinic else schema_name, file_name=file_name, error=message
    )
