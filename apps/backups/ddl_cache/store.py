"""The DDL cache's storage: one row per (structure fingerprint, pg_dump version)
in ``public``. The engine gets it passed in (services.py) and never imports models."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.backups.ddl_cache.models import SchemaDdl

USE_RECORDED_EVERY = timedelta(days=1)


class DatabaseDdlCache:
    """What ``apps.backups.engine.copy_dump`` needs: ``lookup`` and ``save``."""

    def lookup(self, *, fingerprint: str, pg_dump_version: str) -> SchemaDdl | None:
        entry = SchemaDdl.objects.filter(fingerprint=fingerprint, pg_dump_version=pg_dump_version).first()
        now = timezone.now()
        if entry is not None and entry.last_used_at < now - USE_RECORDED_EVERY:
            # At most one write a day per structure, not one per backup.
            SchemaDdl.objects.filter(pk=entry.pk).update(last_used_at=now)
        return entry

    def save(self, ddl, *, source_schema: str) -> None:
        """Keep ``ddl`` (any object with the model's fields); a concurrent backup that
        filled the same key first wins (it wrote the same text)."""
        try:
            with transaction.atomic():
                SchemaDdl.objects.create(
                    fingerprint=ddl.fingerprint,
                    pg_dump_version=ddl.pg_dump_version,
                    placeholder=ddl.placeholder,
                    pre_data=ddl.pre_data,
                    post_data=ddl.post_data,
                    source_schema=source_schema,
                    fill_seconds=ddl.fill_seconds,
                )
        except IntegrityError:
            pass


def ddl_cache_unused(*, older_than: datetime) -> list[SchemaDdl]:
    """Entries no backup has used since ``older_than`` (structures no clinic has any
    more, after a migration or an upgrade of pg_dump). Removing one that is still
    needed only costs the next backup of that structure a refill with pg_dump."""
    return list(SchemaDdl.objects.filter(last_used_at__lt=older_than).defer("pre_data", "post_data"))


def ddl_cache_delete(entries: list[SchemaDdl]) -> None:
    SchemaDdl.objects.filter(pk__in=[entry.pk for entry in entries]).delete()
