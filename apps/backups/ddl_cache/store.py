"""The DDL cache's storage: one row per (structure fingerprint, pg_dump version)
in ``public``. The engine gets it passed in (services.py) and never imports models."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.backups.ddl_cache.models import SchemaDdl


class DatabaseDdlCache:
    """What ``apps.backups.engine.copy_dump`` needs: ``lookup`` and ``save``."""

    def lookup(self, *, fingerprint: str, pg_dump_version: str) -> SchemaDdl | None:
        return SchemaDdl.objects.filter(fingerprint=fingerprint, pg_dump_version=pg_dump_version).first()

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
