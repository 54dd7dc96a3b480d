"""Retention (``manage.py cleanup_old_backups``).

Per clinic, in its own time zone:

- manual backups are kept forever;
- the first successful automatic backup of each week (weeks start on Sunday,
  the guide's weekly day) is the week's backup: kept ``BACKUP_RETENTION_WEEKLY_DAYS``
  (6 months);
- every other automatic backup (daily, one-off) is kept ``BACKUP_RETENTION_DAILY_DAYS`` (30);
- failed records go after ``BACKUP_RETENTION_FAILED_DAYS``;
- the clinic's newest successful backup is never deleted, whatever its age.

A backup goes by deleting its stored object, then its manifest, then its
record: an interrupted cleanup leaves at worst an expired record whose object
is already gone, which the next run finishes, never a kept backup without its
object. Objects of ours that no record references (a lost record), older than
``BACKUP_ORPHAN_GRACE_HOURS``, are swept as orphans. Schemas set aside by
restores (``_prev_``) and those left by interrupted restores or drills
(``_in_``, ``_park_``, ``_drill_``) are listed, and dropped once older than
``BACKUP_RESTORE_KEEP_DAYS`` by the restore code's own hook. DDL cache entries no
backup has used for ``BACKUP_DDL_CACHE_KEEP_DAYS`` (structures left behind by
migrations or a pg_dump upgrade) are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.ddl_cache.store import ddl_cache_delete, ddl_cache_unused
from apps.backups.engine.naming import MANIFEST_SUFFIX, parse_file_name
from apps.backups.errors import BackupError
from apps.backups.models import BackupRecord
from apps.backups.scheduling.rules import clinic_zone, week_sunday
from apps.backups.selectors import schemas_with_backup_table
from apps.backups.services import abandoned_writes_find, backup_delete, stale_backups_fail
from apps.backups.storage import BackupStorage, get_backup_storage
from apps.tenants.models import Clinic, ScheduledBackupClaim
from apps.tenants.selectors import clinics_for_backup

logger = logging.getLogger(__name__)

# Finished claims are only needed while their slot can still come up again.
CLAIM_KEEP_DAYS = 35


@dataclass(frozen=True)
class CleanupItem:
    schema_name: str
    what: str  # a file name, an object path or a schema name
    reason: str


@dataclass
class CleanupReport:
    dry_run: bool
    backups: list[CleanupItem] = field(default_factory=list)
    orphans: list[CleanupItem] = field(default_factory=list)
    schemas: list[CleanupItem] = field(default_factory=list)
    schemas_kept: list[CleanupItem] = field(default_factory=list)  # interrupted restores' leftovers, still young
    ddl_cache: list[CleanupItem] = field(default_factory=list)  # unused DDL cache entries
    errors: list[str] = field(default_factory=list)


def backups_expired(*, records: Iterable[BackupRecord], time_zone: str, now: datetime) -> dict[int, str]:
    """Which of one clinic's records retention removes: ``{record id: reason}``. Pure."""
    records = sorted(records, key=lambda r: (r.created_at, r.pk))
    zone = clinic_zone(time_zone)
    succeeded = [r for r in records if r.status == BackupRecord.Status.SUCCEEDED]
    newest = succeeded[-1].pk if succeeded else None
    daily_limit = now - timedelta(days=settings.BACKUP_RETENTION_DAILY_DAYS)
    weekly_limit = now - timedelta(days=settings.BACKUP_RETENTION_WEEKLY_DAYS)
    failed_limit = now - timedelta(days=settings.BACKUP_RETENTION_FAILED_DAYS)
    weeks_seen: set = set()
    expired = {}
    for record in records:
        if record.status == BackupRecord.Status.FAILED:
            if record.created_at < failed_limit:
                expired[record.pk] = f"fallido, más de {settings.BACKUP_RETENTION_FAILED_DAYS} días"
            continue
        if record.status != BackupRecord.Status.SUCCEEDED or record.backup_type != "automatic":
            continue  # running (handled as stale by the backup code) or manual (kept forever)
        week = week_sunday(record.created_at.astimezone(zone).date())
        weekly = week not in weeks_seen
        weeks_seen.add(week)
        if record.pk == newest:
            continue
        if weekly and record.created_at < weekly_limit:
            expired[record.pk] = f"semanal, más de {settings.BACKUP_RETENTION_WEEKLY_DAYS} días"
        elif not weekly and record.created_at < daily_limit:
            expired[record.pk] = f"automático, más de {settings.BACKUP_RETENTION_DAILY_DAYS} días"
    return expired


def backups_cleanup(*, now: datetime | None = None, dry_run: bool = False) -> CleanupReport:
    """Apply retention to every clinic, sweep orphans and old restore leftovers."""
    from apps.backups.restore.swap import restore_leftover_schemas_drop, restore_leftover_schemas_list

    now = now or timezone.now()
    report = CleanupReport(dry_run=dry_run)
    storage = get_backup_storage()
    with_table = schemas_with_backup_table()
    for clinic in clinics_for_backup().filter(schema_name__in=with_table):
        try:
            clinic_backups_cleanup(clinic=clinic, storage=storage, now=now, report=report)
        except BackupError as error:
            report.errors.append(f"{clinic.schema_name}: {error}")
    older_than = now - timedelta(days=settings.BACKUP_RESTORE_KEEP_DAYS)
    leftovers = {item.name: item for item in restore_leftover_schemas_list()}
    for name in restore_leftover_schemas_drop(older_than=older_than, dry_run=dry_run):
        interrupted = leftovers[name].interrupted
        what = "dejado por una restauración interrumpida" if interrupted else "apartado por una restauración"
        reason = f"{what} antes del {older_than:%Y-%m-%d} (más de {settings.BACKUP_RESTORE_KEEP_DAYS} días)"
        report.schemas.append(CleanupItem(leftovers[name].clinic_prefix, name, reason))
    for item in leftovers.values():
        if item.interrupted and item.created_at >= older_than:
            until = item.created_at + timedelta(days=settings.BACKUP_RESTORE_KEEP_DAYS)
            reason = f"dejado por una restauración interrumpida; se conserva hasta {until:%F %H:%M} UTC"
            report.schemas_kept.append(CleanupItem(item.clinic_prefix, item.name, reason))
    _ddl_cache_prune(now=now, report=report)
    if not dry_run:
        ScheduledBackupClaim.objects.exclude(status=ScheduledBackupClaim.Status.RUNNING).filter(
            claimed_at__lt=now - timedelta(days=CLAIM_KEEP_DAYS)
        ).delete()
    return report


def _ddl_cache_prune(*, now: datetime, report: CleanupReport) -> None:
    days = settings.BACKUP_DDL_CACHE_KEEP_DAYS
    unused = ddl_cache_unused(older_than=now - timedelta(days=days))
    if not report.dry_run:
        ddl_cache_delete(unused)
    for entry in unused:
        reason = f"DDL en caché sin usar desde el {entry.last_used_at:%Y-%m-%d} (más de {days} días)"
        report.ddl_cache.append(CleanupItem(entry.source_schema, str(entry), reason))


def clinic_backups_cleanup(*, clinic: Clinic, storage: BackupStorage, now: datetime, report: CleanupReport) -> None:
    schema = clinic.schema_name
    with schema_context(schema):
        # Temporaries of interrupted writes: listed (dry run too), removed by stale_backups_fail.
        for path in abandoned_writes_find(storage=storage, schema_name=schema):
            report.orphans.append(CleanupItem(schema, path, "temporal de una escritura interrumpida"))
        if not report.dry_run:
            stale_backups_fail(storage=storage, schema_name=schema)
        records = list(BackupRecord.objects.all())
        if report.dry_run:
            _stale_as_failed(records)
        expired = backups_expired(records=records, time_zone=clinic.time_zone, now=now)
        # Every record's objects, the expired ones' too: those go with their backup (or are
        # already gone when listed), so a dry run never calls them orphans.
        referenced = {path for r in records for path in (r.file_path, r.manifest_path) if path}
        for record in records:
            reason = expired.get(record.pk)
            if reason is None:
                continue
            label = record.file_name or f"registro {record.pk}"
            if not report.dry_run:
                try:
                    retention_backup_delete(record=record, storage=storage)
                except BackupError as error:
                    report.errors.append(f"{schema}/{label}: {error}")
                    continue
            report.backups.append(CleanupItem(schema, label, reason))
    grace_limit = now - timedelta(hours=settings.BACKUP_ORPHAN_GRACE_HOURS)
    for stored in storage.list(f"{schema}/"):
        if stored.path in referenced or not _looks_like_ours(stored.path):
            continue
        if stored.modified is None or stored.modified >= grace_limit:
            continue  # maybe a backup still being written: only old orphans go
        if not report.dry_run:
            try:
                storage.delete(stored.path)
            except BackupError as error:
                report.errors.append(f"{stored.path}: {error}")
                continue
        report.orphans.append(CleanupItem(schema, stored.path, "objeto sin registro"))


def _stale_as_failed(records: list[BackupRecord]) -> None:
    """For a dry run, in memory only: crashed 'running' records as the real run sees them
    (``stale_backups_fail`` marks them failed first), so both list the same."""
    stale_limit = timezone.now() - timedelta(minutes=settings.BACKUP_STALE_AFTER_MINUTES)
    for record in records:
        if record.status == BackupRecord.Status.RUNNING and record.created_at < stale_limit:
            record.status = BackupRecord.Status.FAILED


def retention_backup_delete(*, record: BackupRecord, storage: BackupStorage) -> None:
    backup_delete(record=record, storage=storage)
    logger.info("Backup eliminado por retención: %s", record.file_name)


def _looks_like_ours(path: str) -> bool:
    """Only objects named like backups or manifests are ever swept as orphans."""
    name = path.rsplit("/", 1)[-1]
    name = name.removesuffix(MANIFEST_SUFFIX).removesuffix(".age").removesuffix(".zst")
    return parse_file_name(name) is not None
