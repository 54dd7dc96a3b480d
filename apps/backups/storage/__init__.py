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

BACKENDS = {
    "local": "apps.backups.storage.local.LocalBackupStorage",
}

__all__ = ["BackupStorage", "StoredObject", "get_backup_storage"]


def get_backup_storage() -> BackupStorage:
    name = settings.BACKUP_STORAGE_BACKEND
    try:
        backend_class = import_string(BACKENDS.get(name, name))
    except ImportError as error:
        raise ImproperlyConfigured(
            f"BACKUP_STORAGE_BACKEND={name!r} no se puede cargar ({error}). Opciones: {', '.join(BACKENDS)}."
        ) from None
    return backend_class(**backend_options(name))


def backend_options(name: str) -> dict:
    if name == "local" or name not in BACKENDS:
        return {"root": settings.BACKUP_LOCAL_ROOT}
    return {}
