"""Choosing the storage backend from settings, the way Django picks storages.

``BACKUP_STORAGE_BACKEND`` is ``local``, ``s3``, ``supabase`` or the dotted path
of a :class:`~apps.backups.storage.base.BackupStorage` subclass. The backend is
built when asked for (not at import) so ``override_settings`` works and a
missing optional dependency only matters for the backend that needs it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.backups.storage.base import BackupStorage, StoredObject
from apps.backups.storage.retry import RetryPolicy

BACKENDS = {
    "local": "apps.backups.storage.local.LocalBackupStorage",
    "s3": "apps.backups.storage.s3.S3BackupStorage",
    "supabase": "apps.backups.storage.supabase.SupabaseBackupStorage",
}

__all__ = ["BackupStorage", "StoredObject", "get_backup_storage"]


# A system check asks a remote backend one question before every management
# command that runs checks: it must not keep an operator waiting for a storage
# outage (``BACKUP_STORAGE_TIMEOUT`` is 60 s and the retries outlast a restart).
CHECK_TIMEOUT_SECONDS = 5


def get_backup_storage(*, for_check: bool = False) -> BackupStorage:
    """The configured backend; ``for_check``: one attempt per request, at most
    ``CHECK_TIMEOUT_SECONDS`` of waiting (a system check, not a backup)."""
    name = settings.BACKUP_STORAGE_BACKEND
    try:
        backend_class = import_string(BACKENDS.get(name, name))
    except ImportError as error:
        raise ImproperlyConfigured(
            f"BACKUP_STORAGE_BACKEND={name!r} no se puede cargar ({error}). Opciones: {', '.join(BACKENDS)}."
        ) from None
    options = backend_options(name)
    if for_check and "timeout" in options:
        options |= {"timeout": min(options["timeout"], CHECK_TIMEOUT_SECONDS), "retry": RetryPolicy(max_attempts=1)}
    return backend_class(**options)


def backend_options(name: str) -> dict:
    """Constructor arguments of a named backend, read from settings when it is built."""
    if name == "s3":
        return {
            "bucket": settings.BACKUP_S3_BUCKET,
            "endpoint_url": settings.BACKUP_S3_ENDPOINT_URL,
            "region": settings.BACKUP_S3_REGION,
            "access_key_id": settings.BACKUP_S3_ACCESS_KEY_ID,
            "secret_access_key": settings.BACKUP_S3_SECRET_ACCESS_KEY,
            "addressing_style": settings.BACKUP_S3_ADDRESSING_STYLE,
            "prefix": settings.BACKUP_S3_PREFIX,
            "part_size": settings.BACKUP_S3_PART_SIZE_MB * 1024 * 1024,
            "timeout": settings.BACKUP_STORAGE_TIMEOUT,
            "retry": retry_policy(),
        }
    if name == "supabase":
        return {
            "url": settings.SUPABASE_URL,
            "key": settings.SUPABASE_KEY,
            "bucket": settings.SUPABASE_BUCKET_NAME,
            "timeout": settings.BACKUP_STORAGE_TIMEOUT,
            "retry": retry_policy(),
        }
    return {"root": settings.BACKUP_LOCAL_ROOT}


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max(1, settings.BACKUP_STORAGE_MAX_ATTEMPTS),
        backoff_base=settings.BACKUP_STORAGE_RETRY_BACKOFF_MS / 1000,
    )
