"""The Supabase backend spools an upload to local disk: when that disk is full,
the error says which disk, also when pyrage (encryption) is the writer."""

import os

import pyrage
import pytest

from apps.backups.engine.pipeline import store_stream
from apps.backups.errors import StorageError
from apps.backups.storage.supabase import SupabaseBackupStorage
from tests.support.disks import small_tmpfs
from tests.support.fake_supabase import SERVICE_ROLE_KEY


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_full_spool_disk_is_named_in_the_error_and_nothing_is_left(tmp_path, encrypted):
    with small_tmpfs(tmp_path / "spool") as spool:
        # Nothing reaches the server: the spool fills first.
        storage = SupabaseBackupStorage(url="http://127.0.0.1:9", key=SERVICE_ROLE_KEY, spool_dir=str(spool))
        recipients = [pyrage.x25519.Identity.generate().to_public()] if encrypted else []
        source = _Random(3 * 1024 * 1024)
        with pytest.raises(StorageError, match=f"disco local está lleno.*{spool}"):
            store_stream(
                source=source, storage=storage, path="alfa/backup-sql-alfa.sql.zst", recipients=recipients, level=1
            )
        assert list(spool.iterdir()) == []


class _Random:
    """Incompressible bytes, read in chunks."""

    def __init__(self, size: int):
        self._left = size

    def read(self, size: int = -1) -> bytes:
        size = min(self._left, 65536 if size is None or size < 0 else size)
        self._left -= size
        return os.urandom(size)
