"""Backups in a folder on disk, laid out exactly like the bucket."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from apps.backups.errors import StorageError
from apps.backups.storage.base import (
    TEMP_PREFIX,
    BackupStorage,
    StoredObject,
    final_path_of_temporary,
    temporary_name,
    validate_object_path,
)


class LocalBackupStorage(BackupStorage):
    label = "almacenamiento local"

    def __init__(self, *, root: Path | str):
        self.root = Path(root)

    def _full_path(self, path: str) -> Path:
        return self.root / validate_object_path(path)

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        final = self._full_path(path)
        try:
            final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise StorageError(f"No se puede escribir en {self.label} ({self.root}): {error.strerror}") from None
        temporary = final.with_name(temporary_name(final.name))
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise StorageError(f"No se puede escribir en {self.label} ({self.root}): {error.strerror}") from None
        try:
            with os.fdopen(descriptor, "wb") as stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, final)
        except OSError as error:
            raise StorageError(f"Error al escribir en {self.label}: {error.strerror}") from None
        finally:
            temporary.unlink(missing_ok=True)

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        try:
            stream = open(self._full_path(path), "rb")
        except FileNotFoundError:
            raise StorageError(f"El objeto {path} no existe en {self.label}.") from None
        except OSError as error:
            raise StorageError(f"No se puede leer {path} de {self.label}: {error.strerror}") from None
        with stream:
            yield stream

    def delete(self, path: str) -> None:
        try:
            if not self._full_path(path).exists():
                return  # nothing to do, even where the folder is read-only
            self._full_path(path).unlink(missing_ok=True)
        except NotADirectoryError:
            pass  # its folder cannot exist, so neither does the object
        except OSError as error:
            raise StorageError(f"No se puede borrar {path} de {self.label}: {error.strerror}") from None

    def abandoned_writes(self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()) -> list[str]:
        folder = self.root / validate_object_path(prefix.rstrip("/"))
        try:
            return sorted(
                path
                for temporary in (folder.glob(f"{TEMP_PREFIX}*") if folder.is_dir() else [])
                if (path := temporary.relative_to(self.root).as_posix())
                and (
                    final_path_of_temporary(path) in finished_paths
                    or datetime.fromtimestamp(temporary.stat().st_mtime, tz=UTC) < older_than
                )
            )
        except OSError as error:
            raise StorageError(f"No se pueden leer los temporales de {prefix}: {error.strerror}") from None

    def abandoned_writes_remove(
        self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()
    ) -> int:
        stale = self.abandoned_writes(prefix, older_than=older_than, finished_paths=finished_paths)
        try:
            for path in stale:
                (self.root / path).unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"No se pueden borrar temporales de {prefix}: {error.strerror}") from None
        return len(stale)

    def exists(self, path: str) -> bool:
        return self._full_path(path).is_file()

    def list(self, prefix: str) -> list[StoredObject]:
        folder = prefix.rstrip("/")
        base = self._full_path(folder) if folder else self.root
        if not base.is_dir():
            return []
        objects = []
        for entry in sorted(base.rglob("*")):
            if entry.is_file() and not entry.name.startswith(TEMP_PREFIX):
                stat = entry.stat()
                objects.append(
                    StoredObject(
                        path=entry.relative_to(self.root).as_posix(),
                        size=stat.st_size,
                        modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                    )
                )
        return objects
