"""One behaviour suite for every storage backend: local, s3 and supabase.

The remote backends talk to real servers on loopback (moto, the fake Supabase
Storage) through their real client libraries, behind a proxy that can make the
Nth request fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.backups.errors import StorageError
from tests.backups.storage.conftest import MAX_ATTEMPTS, expect_timeouts

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]


def payload(size: int, seed: int = 7) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def test_stores_and_reads_back_byte_identical(backend):
    storage = backend.storage()
    data = payload(3 * MB + 17)
    with storage.open_write("alfa/backup-sql-alfa-2025-01-01-000000.sql.zst") as stream:
        for start in range(0, len(data), 100_000):
            stream.write(data[start : start + 100_000])

    assert storage.exists("alfa/backup-sql-alfa-2025-01-01-000000.sql.zst")
    assert storage.read_bytes("alfa/backup-sql-alfa-2025-01-01-000000.sql.zst") == data
    assert storage.sha256("alfa/backup-sql-alfa-2025-01-01-000000.sql.zst") == hashlib.sha256(data).hexdigest()
    assert b"".join(storage.iter_chunks("alfa/backup-sql-alfa-2025-01-01-000000.sql.zst", 4096)) == data


def test_multipart_sized_object_round_trips(backend):
    """Over one S3 part (5 MB here): several parts, completed on exit."""
    storage = backend.storage()
    data = payload(12 * MB + 5)
    with storage.open_write("alfa/grande.sql.zst") as stream:
        stream.write(data)
    assert storage.read_bytes("alfa/grande.sql.zst") == data


def test_empty_object_round_trips(backend):
    storage = backend.storage()
    with storage.open_write("alfa/vacio.json"):
        pass
    assert storage.exists("alfa/vacio.json")
    assert storage.read_bytes("alfa/vacio.json") == b""


def test_lists_by_clinic_prefix_only(backend):
    storage = backend.storage()
    storage.write_bytes("alfa/uno.sql.zst", b"1" * 10)
    storage.write_bytes("alfa/dos.sql.manifest.json", b"{}")
    storage.write_bytes("alfabeta/otro.sql.zst", b"3")
    storage.write_bytes("beta/tres.sql.zst", b"333")

    listed = storage.list("alfa/")
    assert [(item.path, item.size) for item in listed] == [
        ("alfa/dos.sql.manifest.json", 2),
        ("alfa/uno.sql.zst", 10),
    ]
    # Every backend says when: without it, orphan sweeping would silently stop.
    assert all(item.modified is not None and item.modified.tzinfo for item in listed)
    assert all(abs(item.modified - timezone.now()) < timedelta(hours=1) for item in listed)
    assert [item.path for item in storage.list("beta")] == ["beta/tres.sql.zst"]
    assert storage.list("gamma/") == []
    assert {item.path for item in storage.list("")} == {
        "alfa/dos.sql.manifest.json",
        "alfa/uno.sql.zst",
        "alfabeta/otro.sql.zst",
        "beta/tres.sql.zst",
    }


def test_delete_and_exists(backend):
    storage = backend.storage()
    storage.write_bytes("alfa/borrar.sql.zst", b"datos")
    assert storage.exists("alfa/borrar.sql.zst")
    storage.delete("alfa/borrar.sql.zst")
    assert not storage.exists("alfa/borrar.sql.zst")
    storage.delete("alfa/borrar.sql.zst")  # missing: not an error
    assert storage.list("alfa/") == []


def test_reading_a_missing_object_is_a_clear_error(backend):
    with pytest.raises(StorageError, match="no existe"):
        backend.storage().read_bytes("alfa/no-existe.sql.zst")


def test_paths_are_validated(backend):
    storage = backend.storage()
    for bad in ("../fuera", "alfa/../beta/x", "/abs", "alfa/.oculto"):
        with pytest.raises(StorageError, match="no válida"):
            storage.write_bytes(bad, b"x")


@pytest.mark.parametrize("size", [10, 12 * MB], ids=["small", "multipart"])
def test_interrupted_write_leaves_nothing_under_the_final_name(backend, size):
    storage = backend.storage()
    with pytest.raises(RuntimeError, match="dump murió"), storage.open_write("alfa/roto.sql.zst") as stream:
        stream.write(payload(size))
        raise RuntimeError("dump murió")

    assert not storage.exists("alfa/roto.sql.zst")
    assert storage.list("alfa/") == []
    assert backend.raw_keys() == []  # no temporary and no open multipart upload either


def test_abandoned_temporaries_are_reclaimed_and_never_listed(backend):
    """A process killed after starting an upload leaves a hidden leftover at most."""
    storage = backend.storage()
    storage.write_bytes("alfa/bueno.sql.zst", b"ok")
    writer = storage.open_write("alfa/muerto.sql.zst")
    stream = writer.__enter__()
    stream.write(payload(6 * MB))  # the S3 writer has started a multipart upload by now
    stream.flush()
    # The process "dies" here: no __exit__. Whatever is left is not the object.
    assert not storage.exists("alfa/muerto.sql.zst")
    assert [item.path for item in storage.list("alfa/")] == ["alfa/bueno.sql.zst"]
    removed = storage.abandoned_writes_remove("alfa/", older_than=datetime.now(UTC) + timedelta(minutes=1))
    # local: its hidden temporary file; s3: the open multipart upload; supabase spools
    # to local disk and uploads only on exit, so nothing is in the bucket yet.
    assert removed == (0 if backend.name == "supabase" else 1)
    assert backend.raw_keys() == ["alfa/bueno.sql.zst"]
    writer.__exit__(RuntimeError, RuntimeError("fin"), None)


def test_large_object_streams_in_bounded_memory(backend, tmp_path):
    """A 256 MB object written and read back by a separate process: its peak RSS
    grows by far less than the object (parts and chunks, never the whole)."""
    megabytes = 256
    env = {
        **os.environ,
        **backend.env,
        "BACKUP_STORAGE_TIMEOUT": "60",
        "BACKUP_S3_PART_SIZE_MB": "8",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.storage_probe", "alfa/enorme.sql.zst", str(megabytes)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["size"] == megabytes * MB
    assert report["read_sha256"] == report["written_sha256"]
    growth_mb = (report["peak_kb"] - report["baseline_kb"]) / 1024
    assert growth_mb < 64, f"la memoria creció {growth_mb:.0f} MB para un objeto de {megabytes} MB"
    stored = {item.path: item.size for item in backend.storage().list("alfa/")}
    assert stored == {"alfa/enorme.sql.zst": megabytes * MB}


# -- remote backends: failures of the network and of the service ---------------------------------


FAULTS = ["503", "500", "429", "timeout", "drop"]


MAX_RETRIED_FAILURES = 2  # fewer than MAX_ATTEMPTS
# (kind, nth): every kind on the first, a middle and a late request of a write
# (s3: create, 3 parts, complete; supabase: upload, move); timeouts cost real
# seconds, so they are tried on one position.
TRANSIENT_CASES = [(kind, nth) for kind in ("503", "500", "429", "drop") for nth in (1, 2, 3)] + [("timeout", 2)]


@pytest.mark.parametrize(("kind", "nth"), TRANSIENT_CASES)
def test_transient_failures_on_the_nth_request_are_retried(remote, kind, nth, settings):
    if kind == "timeout":
        expect_timeouts(settings)
    storage = remote.storage()
    data = payload(12 * MB + 1)
    # Counted over a write then a read (supabase: its bucket check, upload and move).
    remote.proxy.fail(kind, nth=nth, times=MAX_RETRIED_FAILURES)
    with storage.open_write("alfa/reintentos.sql.zst") as stream:
        stream.write(data)
    assert storage.read_bytes("alfa/reintentos.sql.zst") == data
    assert remote.proxy.faults == {}  # every injected failure was met, and retried
    remote.proxy.fail(kind, nth=1)
    assert [item.path for item in storage.list("alfa/")] == ["alfa/reintentos.sql.zst"]
    remote.proxy.fail(kind, nth=1)
    assert storage.exists("alfa/reintentos.sql.zst")
    remote.proxy.fail(kind, nth=1)
    storage.delete("alfa/reintentos.sql.zst")
    assert remote.proxy.faults == {}
    assert remote.raw_keys() == []


@pytest.mark.parametrize("kind", FAULTS)
def test_persistent_failures_give_a_clear_error_and_no_object(remote, kind, settings):
    if kind == "timeout":
        expect_timeouts(settings)
    storage = remote.storage()
    # The call fails for its whole budget, then the service is back for the clean-up:
    # s3, its first part (after create); supabase, the move (after bucket check, upload).
    remote.proxy.fail(kind, nth=3 if remote.name == "supabase" else 2, times=MAX_ATTEMPTS)
    with pytest.raises(StorageError, match=f"tras {MAX_ATTEMPTS} intentos") as raised:
        with storage.open_write("alfa/fallido.sql.zst") as stream:
            stream.write(payload(6 * MB))
    assert "Inténtalo más tarde" in str(raised.value)
    assert remote.proxy.faults == {}
    # The writer cleaned up after itself: s3 aborted its multipart upload, supabase
    # deleted its temporary. Checked before anything else could remove them.
    assert remote.raw_keys() == []
    assert not storage.exists("alfa/fallido.sql.zst")


@pytest.mark.parametrize("kind", ["503", "drop"])
def test_persistent_failures_on_read_list_delete(remote, kind):
    storage = remote.storage()
    storage.write_bytes("alfa/x.sql.zst", b"datos")
    for operation in (
        lambda: storage.read_bytes("alfa/x.sql.zst"),
        lambda: storage.list("alfa/"),
        lambda: storage.exists("alfa/x.sql.zst"),
        lambda: storage.delete("alfa/x.sql.zst"),
    ):
        remote.proxy.fail(kind, nth=1, times=1000)
        with pytest.raises(StorageError, match=f"tras {MAX_ATTEMPTS} intentos"):
            operation()
    remote.proxy.reset()
    assert storage.read_bytes("alfa/x.sql.zst") == b"datos"
