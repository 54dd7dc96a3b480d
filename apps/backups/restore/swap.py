"""Restoring a clinic from a backup, atomically.

The backup is first loaded beside the live clinic, into an *incoming* schema:

- SQL: one psql transaction renames the live schema aside, replays the dump
  (which recreates the clinic's schema), renames the result to the incoming
  name and the live schema back. The live clinic is never changed here: the
  transaction is opened by our first line and committed by our last, sent
  only once the whole dump has been sent and its checksum verified
  (``apps.backups.engine.psql``), so a feeder that dies or a stream cut short
  commits nothing.
- JSON: a fresh schema gets every migration, then ``loaddata``.

The incoming schema is migrated forward (a backup made before newer
migrations), then one transaction copies the clinic's backup history into it,
moves the live schema aside under a dated *previous* name and renames the
incoming schema to the clinic's. If anything fails before that commit, the
live clinic is exactly as it was; the previous schema keeps the state before
the restore for ``BACKUP_RESTORE_KEEP_DAYS`` (dropped by cleanup_old_backups).

Every restore holds the clinic's exclusive lock (``apps.backups.locking``) from
before its source is opened until the swap has committed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from axes.models import AccessFailureLog, AccessLog
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
from apps.backups.engine.pg_messages import pg_values_removed
from apps.backups.engine.progress import Progress, chunks_counted, progress_noop
from apps.backups.engine.psql import psql_run
from apps.backups.errors import (
    BackupError,
    DumpError,
    RestoreError,
    RestoreFailedError,
    size_text,
)
from apps.backups.locking import ClinicLock, clinic_lock
from apps.backups.models import BackupDownload, BackupJob, BackupRecord, BackupRestore

logger = logging.getLogger(__name__)

INCOMING_MARK = "_in_"
PREVIOUS_MARK = "_prev_"
PARKING_MARK = "_park_"
DRILL_MARK = "_drill_"
# Set aside on purpose (the state before a restore), kept BACKUP_RESTORE_KEEP_DAYS.
KEPT_MARKS = (PREVIOUS_MARK,)
# Left only by an interrupted restore or drill (a killed JSON load, a lost connection).
INTERRUPTED_MARKS = (INCOMING_MARK, PARKING_MARK, DRILL_MARK)
_LEFTOVER_RE = re.compile(
    r"^(?P<schema>[a-z_][a-z0-9_]*?)(?P<mark>_in_|_prev_|_park_|_drill_)(?P<stamp>\d{14})(?:_[0-9a-f]{4})?$"
)
# History is the clinic's record of backups and of sign-ins (django-axes' logs, an
# audit trail): it survives any restore. Jobs too (after the records they point
# at): a restore job's own row must outlive its swap.
HISTORY_MODELS = (BackupRecord, BackupDownload, BackupRestore, BackupJob, AccessLog, AccessFailureLog)
USER_COLUMNS = {"created_by_id", "user_id", "requested_by_id"}


@dataclass(frozen=True)
class DumpSource:
    """A verified plain dump to restore: its format and its chunks."""

    format: str  # "sql" | "json"
    chunks: Iterable[bytes]
    pg_dump_version: str = ""


def side_schema_name(schema_name: str, mark: str, when: datetime, *, unique: bool = False) -> str:
    """``<schema>_prev_<YYYYMMDDHHMMSS>``; ``unique`` adds ``_<4 hex>`` so that two
    loads started in the same second never share a name (63 characters at most)."""
    if unique:
        return f"{schema_name[:36]}{mark}{when:%Y%m%d%H%M%S}_{secrets.token_hex(2)}"
    return f"{schema_name[:40]}{mark}{when:%Y%m%d%H%M%S}"


def _quote(name: str) -> str:
    return '"' + validate_schema_name(name) + '"'


# Loading into the incoming schema ------------------------------------------------


def incoming_load_sql(*, schema_name: str, incoming: str, source: DumpSource) -> None:
    """Replay a plain dump of ``schema_name`` so that it lands in ``incoming``,
    in one psql transaction that leaves the live schema as it was."""
    live_exists = schema_exists(schema_name)
    parking = side_schema_name(schema_name, PARKING_MARK, timezone.now(), unique=True)
    before = f"ALTER SCHEMA {_quote(schema_name)} RENAME TO {_quote(parking)};\n" if live_exists else ""
    after = f"\nALTER SCHEMA {_quote(schema_name)} RENAME TO {_quote(incoming)};\n"
    if live_exists:
        after += f"ALTER SCHEMA {_quote(parking)} RENAME TO {_quote(schema_name)};\n"
    dump_major = int(source.pg_dump_version.split(".")[0]) if source.pg_dump_version else 0
    # A psql at least as new as the pg_dump that wrote the dump (\restrict lines).
    try:
        client = find_client("psql", min_major=max(dump_major, server_major(connection)))
    except DumpError as error:
        raise RestoreFailedError(str(error)) from None
    # psql_run opens the transaction before ``before`` and commits after ``after`` only.
    psql_run(client=client, chunks=_framed(before.encode(), source.chunks, after.encode()))


def _framed(head: bytes, chunks: Iterable[bytes], tail: bytes) -> Iterator[bytes]:
    yield head
    yield from chunks
    yield tail


def incoming_load_json(*, incoming: str, source: DumpSource) -> None:
    """Create ``incoming`` with every migration and load the JSON into it.

    A JSON backup carries the clinic's content types, permissions and groups
    (with their original ids, which users' permission and group links use):
    the ones the migrations just created are replaced by them, then those of
    models newer than the backup are added back."""
    _incoming_create_and_migrate(incoming)
    with schema_context(incoming), transaction.atomic():
        try:
            # Django's JSON deserializer reads the whole document anyway.
            text = b"".join(source.chunks).decode("utf-8")
            if '"model": "contenttypes.contenttype"' in text:
                _auth_catalog_clear(incoming)
            objects = serializers.deserialize("json", text, ignorenonexistent=False)
            for obj in objects:
                obj.save()
        except serializers.base.DeserializationError as error:
            raise RestoreError(f"El JSON del backup no se puede cargar: {error}") from None
        _sequences_reset()
        _auth_catalog_complete()


def _auth_catalog_clear(schema_name: str) -> None:
    tables = ("auth_group_permissions", "auth_group", "auth_permission", "django_content_type")
    qualified = ", ".join(f"{_quote(schema_name)}.{table}" for table in tables)  # never public's
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {qualified} RESTART IDENTITY CASCADE")
    ContentType.objects.clear_cache()


def _auth_catalog_complete() -> None:
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    ContentType.objects.clear_cache()
    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
        create_permissions(app_config, verbosity=0)
    ContentType.objects.clear_cache()


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

    labels = [*settings.CLINIC_DATA_APPS, "auth", "contenttypes"]
    models = [model for label in labels for model in apps.get_app_config(label).get_models()]
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
    # Random hex too: a small clinic's next restore can swap in within the same second.
    previous = side_schema_name(schema_name, PREVIOUS_MARK, now, unique=True) if schema_exists(schema_name) else ""
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
            if restore.requested_by_id and not _user_exists(restore.requested_by_id):
                restore.requested_by = None  # an admin the backup predates: the link becomes empty
            restore.save(force_insert=True)
    ContentType.objects.clear_cache()
    return restore


def _user_exists(user_id: int) -> bool:
    from apps.users.models import User

    return User.objects.filter(pk=user_id).exists()


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


SourceOpener = Callable[[], AbstractContextManager[DumpSource]]


def restore_from_source(
    *,
    clinic,
    lock: ClinicLock,
    open_source: SourceOpener,
    restore: BackupRestore,
    keep_history_from_live: bool = True,
    progress: Progress | None = None,
) -> BackupRestore:
    """Open the source (stored checksum first), load it beside the live clinic,
    migrate forward and swap in, holding ``lock`` (the clinic's, exclusive).
    ``progress`` hears the phases (the opener counts the bytes of its source).

    On any failure — opening the source (a checksum, a missing object or key)
    included — the live clinic is untouched, the failure is recorded in its
    restore history and a ``RestoreError`` is raised: ``RestoreFailedError``
    (a server fault; its detail is logged, the clinic admin gets a plain
    message) unless the error was already one of the backup family."""
    schema_name = validate_schema_name(clinic.schema_name)
    incoming = side_schema_name(schema_name, INCOMING_MARK, timezone.now(), unique=True)
    started = timezone.now()
    report = progress or progress_noop
    try:
        with open_source() as source:
            report("loading")
            if source.format == "sql":
                incoming_load_sql(schema_name=schema_name, incoming=incoming, source=source)
                report("migrating")
                migrate_forward(incoming)
            elif source.format == "json":
                incoming_load_json(incoming=incoming, source=source)
            else:
                raise RestoreError(f"Formato de backup desconocido: {source.format!r}")
        lock.ensure_held()
        restore.started_at = started
        report("swapping")
        restored = swap_in(
            schema_name=schema_name,
            incoming=incoming,
            restore=restore,
            keep_history_from_live=keep_history_from_live,
        )
    except BaseException as error:
        connection.set_schema_to_public()
        if isinstance(error, BackupError):
            failure = error
        elif isinstance(error, Exception):
            # A failing load or migration quotes the rows it choked on (PostgreSQL's DETAIL).
            failure = RestoreFailedError(pg_values_removed(f"Error inesperado: {error!r}"))
        else:
            failure = RestoreFailedError(f"Interrumpido: {type(error).__name__}")  # Ctrl-C, SystemExit
        _failure_record(schema_name=schema_name, incoming=incoming, restore=restore, started=started, error=failure)
        _restore_failure_alert(schema_name=schema_name, file_name=restore.backup_file_name, message=str(failure))
        if failure is error or not isinstance(error, Exception):
            raise
        raise failure from error
    logger.info(
        "Clínica %s restaurada (%s); estado anterior en %s",
        schema_name,
        restore.source,
        restored.previous_schema or "—",
    )
    return restored


def _failure_record(*, schema_name: str, incoming: str, restore: BackupRestore, started, error: BackupError) -> None:
    """Drop what was loaded and write the failed restore row (the clinic admin's
    message in it; the detail in the log)."""
    incoming_drop(incoming)
    message = error.public_message or str(error)
    if schema_exists(schema_name):
        with schema_context(schema_name):
            requested_by_id = restore.requested_by_id if _user_exists(restore.requested_by_id or 0) else None
            backup_id = restore.backup_id if BackupRecord.objects.filter(pk=restore.backup_id or 0).exists() else None
            BackupRestore.objects.create(
                source=restore.source,
                backup_id=backup_id,
                backup_file_name=restore.backup_file_name,
                uploaded_file_name=restore.uploaded_file_name,
                uploaded_sha256=restore.uploaded_sha256,
                requested_by_id=requested_by_id,
                started_at=started,
                finished_at=timezone.now(),
                status=BackupRestore.Status.FAILED,
                error=message,
            )
    logger.error("Restauración de %s fallida: %s", schema_name, error)


# Leftovers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeftoverSchema:
    """A schema a restore set aside (``_prev_``) or an interrupted one left (``_in_``, ``_park_``, ``_drill_``)."""

    name: str
    clinic_prefix: str  # the clinic's schema name (its first 36-40 characters)
    mark: str
    created_at: datetime

    @property
    def interrupted(self) -> bool:
        return self.mark in INTERRUPTED_MARKS


def restore_leftover_schemas_list() -> list[LeftoverSchema]:
    """Every schema restores set aside or left behind, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        names = [row[0] for row in cursor.fetchall()]
    leftovers = []
    for name in names:
        match = _LEFTOVER_RE.match(name)
        if match:
            stamp = datetime.strptime(match["stamp"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            leftovers.append(LeftoverSchema(name, match["schema"], match["mark"], stamp))
    return sorted(leftovers, key=lambda item: (item.created_at, item.name))


def restore_leftover_schemas(*, older_than: datetime) -> list[str]:
    """Set-aside (previous) and abandoned (incoming, parking, drill) schemas older than ``older_than``."""
    return sorted(item.name for item in restore_leftover_schemas_list() if item.created_at < older_than)


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


def backup_restore(
    *,
    clinic,
    record: BackupRecord,
    user=None,
    progress: Progress | None = None,
    uploaded_file_name: str = "",
    uploaded_sha256: str = "",
) -> BackupRestore:
    """Restore ``clinic`` from one of its own succeeded backups (stored checksum
    verified before anything runs). ``uploaded_*``: the restore was asked with an
    uploaded file identical to this backup (``upload_backup_match``).
    ``progress`` hears the phases and the plain bytes replayed of the backup's size.
    ``ClinicBusyError`` at once if a backup, restore, drill or recovery of the
    clinic is running."""
    from apps.backups.services import backup_open_plain

    restore = BackupRestore(
        source=BackupRestore.Source.UPLOAD if uploaded_sha256 else BackupRestore.Source.BACKUP,
        backup=record,
        backup_file_name=record.file_name,
        uploaded_file_name=uploaded_file_name[:255],
        uploaded_sha256=uploaded_sha256,
        requested_by=user,
    )

    @contextmanager
    def open_source() -> Iterator[DumpSource]:
        if progress is not None:
            progress("verifying", bytes_done=0, bytes_total=record.file_size)
        with backup_open_plain(record=record) as chunks:
            yield DumpSource(
                format=record.format, chunks=chunks_counted(chunks, progress), pg_dump_version=record.pg_dump_version
            )

    with clinic_lock(schema_name=clinic.schema_name, operation="restore") as lock:
        return restore_from_source(
            clinic=clinic, lock=lock, open_source=open_source, restore=restore, progress=progress
        )


def upload_restore(*, clinic, uploaded_file, user=None) -> BackupRestore:
    """Restore, in this process, from an uploaded ``.sql``/``.json`` only if this
    system produced it for this clinic (``upload_backup_match``): anything else
    is refused before a single statement runs. (The API queues a job instead.)"""
    record, sha256 = upload_backup_match(clinic=clinic, uploaded_file=uploaded_file)
    restore = BackupRestore(
        source=BackupRestore.Source.UPLOAD,
        backup=record,
        backup_file_name=record.file_name,
        uploaded_file_name=(uploaded_file.name or "")[:255],
        uploaded_sha256=sha256,
        requested_by=user,
    )

    @contextmanager
    def open_source() -> Iterator[DumpSource]:
        uploaded_file.seek(0)
        yield DumpSource(format=record.format, chunks=uploaded_file.chunks(), pg_dump_version=record.pg_dump_version)

    with clinic_lock(schema_name=clinic.schema_name, operation="restore") as lock:
        return restore_from_source(clinic=clinic, lock=lock, open_source=open_source, restore=restore)


def upload_backup_match(*, clinic, uploaded_file) -> tuple[BackupRecord, str]:
    """The clinic's succeeded backup whose plain SHA-256 the upload has, and that
    SHA-256; ``RestoreError`` when there is none (another clinic's backup, an
    edited byte, hand-written SQL). Byte for byte the same dump as the stored
    backup, so a job can restore from the stored object instead of the upload."""
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
    return record, sha256


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
    from apps.backups.alerts import restore_failure_alert
    from apps.tenants.models import Clinic

    clinic = Clinic.objects.filter(schema_name=schema_name).first()
    restore_failure_alert(
        schema_name=schema_name, clinic_name=clinic.name if clinic else schema_name, file_name=file_name, error=message
    )
