"""Storage backends that misbehave on purpose, plugged in through
BACKUP_STORAGE_BACKEND like any other backend."""

from contextlib import contextmanager

from apps.backups.engine.naming import MANIFEST_SUFFIX
from apps.backups.storage.local import LocalBackupStorage


class CorruptingLocalStorage(LocalBackupStorage):
    """Flips one byte in the middle of every backup object once it is stored: bit rot."""

    @contextmanager
    def open_write(self, path):
        with super().open_write(path) as stream:
            yield stream
        if not path.endswith(MANIFEST_SUFFIX):
            with open(self._full_path(path), "r+b") as stored:
                middle = stored.seek(0, 2) // 2
                stored.seek(middle)
                byte = stored.read(1)
                stored.seek(middle)
                stored.write(bytes([byte[0] ^ 0xFF]))
