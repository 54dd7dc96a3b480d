"""The storage interface every backend implements.

Objects are written through :meth:`BackupStorage.open_write`, which streams to a
temporary name and makes the object visible under its final path only when the
``with`` block exits cleanly, so an interrupted write never leaves something
that could pass for a good backup. Nothing is ever made public.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from apps.backups.errors import StorageError

CHUNK_SIZE = 64 * 1024  # see apps.backups.engine.pipeline.CHUNK_SIZE
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
TEMP_PREFIX = ".tmp-"
_TEMPORARY = re.compile(r"^\.tmp-[0-9a-f]{32}-(.+)$")


@dataclass(frozen=True)
class StoredObject:
    path: str
    size: int
    modified: datetime | None = None


def temporary_name(name: str) -> str:
    """A hidden temporary beside the final object: ``.tmp-<uuid>-<name>``."""
    return f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"


def final_path_of_temporary(path: str) -> str:
    """``<folder>/.tmp-<uuid>-<name>`` → ``<folder>/<name>`` ("" if not one of ours)."""
    folder, _, name = path.rpartition("/")
    match = _TEMPORARY.match(name)
    if not match:
        return ""
    return f"{folder}/{match.group(1)}" if folder else match.group(1)


def validate_object_path(path: str) -> str:
    """Relative ``<schema>/<name>`` paths only: no traversal, no hidden or absolute names."""
    parts = path.split("/") if path else []
    if not parts or any(not _SAFE_COMPONENT.match(part) or part in {".", ".."} for part in parts):
        raise StorageError(f"Ruta de almacenamiento no válida: {path!r}")
    return path


class BackupStorage(ABC):
    #: Shown to people: "Subido exitosamente a <label>".
    label = "almacenamiento"

    @abstractmethod
    def open_write(self, path: str) -> AbstractContextManager[BinaryIO]:
        """A writable binary file; the object appears under ``path`` only on clean exit."""

    @abstractmethod
    def open_read(self, path: str) -> AbstractContextManager[BinaryIO]:
        """A readable binary file of the stored object (``StorageError`` if missing)."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove the object; a missing object is not an error."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[StoredObject]:
        """Objects whose path starts with ``prefix`` (a clinic folder, ``<schema>/``)."""

    def abandoned_writes(self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()) -> list[str]:
        """Temporaries (or open uploads) of writes that never finished, named for people:
        those started before ``older_than``, and at any age those whose final path is in
        ``finished_paths`` (backups already over: nobody is writing them any more).
        Nothing where the service discards incomplete writes itself."""
        return []

    def abandoned_writes_remove(
        self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()
    ) -> int:
        """Remove what :meth:`abandoned_writes` lists. Returns how many were removed."""
        return 0

    def public_access_problem(self) -> str:
        """Why the storage would let anyone read backups ("" when it would not, or cannot tell)."""
        return ""

    def iter_chunks(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with self.open_read(path) as stream:
            while chunk := stream.read(chunk_size):
                yield chunk

    def sha256(self, path: str) -> str:
        """SHA-256 of the stored bytes, read back from the storage."""
        digest = hashlib.sha256()
        for chunk in self.iter_chunks(path):
            digest.update(chunk)
        return digest.hexdigest()

    def write_bytes(self, path: str, data: bytes) -> None:
        with self.open_write(path) as stream:
            stream.write(data)

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as stream:
            return stream.read()
