"""The byte pipeline of a backup, in both directions.

Writing:  plain dump → zstd → age (when recipients are set) → storage, hashing
the plain bytes and the stored bytes on the way. Reading: storage → age →
zstd → plain, after checking the stored object's SHA-256, and checking the
plain SHA-256 at the end. Memory stays bounded (about a megabyte of buffers)
whatever the size of the dump.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import pyrage
import zstandard

from apps.backups.engine.streams import MeasuringReader, MeasuringWriter
from apps.backups.errors import EncryptionError, IntegrityError
from apps.backups.storage import BackupStorage

# 64 KiB: big enough for throughput, small enough that glibc reuses the buffers
# instead of mapping fresh memory for every chunk (measured: 1 MiB chunks cost
# ~440k page faults on a 435 MB dump, 64 KiB ~18k).
CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True)
class StoredBytes:
    plain_size: int
    plain_sha256: str
    stored_size: int
    stored_sha256: str


def store_stream(
    *,
    source: BinaryIO,
    storage: BackupStorage,
    path: str,
    recipients: list,
    level: int,
    limit: int | None = None,
    on_limit: Callable[[], Exception] | None = None,
) -> StoredBytes:
    """Compress, optionally encrypt, and store ``source`` under ``path``."""
    plain = MeasuringReader(source, limit=limit, on_limit=on_limit)
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with storage.open_write(path) as target:
        stored = MeasuringWriter(target)
        with compressor.stream_reader(plain, read_size=CHUNK_SIZE, closefd=False) as compressed:
            if recipients:
                try:
                    pyrage.encrypt_io(compressed, stored, recipients)
                except Exception as error:
                    # pyrage reports a failing reader as its own error: surface the real one,
                    # Ctrl-C (KeyboardInterrupt) and SystemExit included.
                    if plain.error is not None:
                        raise plain.error from None
                    if stored.error is not None:
                        raise stored.error from None  # the storage failed, not the encryption
                    raise EncryptionError(f"Error al cifrar el backup: {error}") from None
            else:
                shutil.copyfileobj(compressed, stored, CHUNK_SIZE)
    return StoredBytes(
        plain_size=plain.size,
        plain_sha256=plain.sha256.hexdigest(),
        stored_size=stored.size,
        stored_sha256=stored.sha256.hexdigest(),
    )


def verify_stored(*, storage: BackupStorage, path: str, expected_sha256: str) -> None:
    actual = storage.sha256(path)
    if actual != expected_sha256:
        raise IntegrityError(
            f"El objeto almacenado {path} no coincide con su checksum (esperado {expected_sha256[:12]}…, "
            f"encontrado {actual[:12]}…)."
        )


class _DecryptingPipe:
    """age decryption on a helper thread, writing into a pipe we read from.

    pyrage decrypts from one file object into another; the pipe turns that
    into a readable stream without holding the object in memory.
    """

    def __init__(self, source: BinaryIO, identities: list):
        read_fd, write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb", buffering=CHUNK_SIZE)
        self._writer = os.fdopen(write_fd, "wb", buffering=CHUNK_SIZE)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(source, identities), daemon=True)
        self._thread.start()

    def _run(self, source: BinaryIO, identities: list) -> None:
        try:
            pyrage.decrypt_io(source, self._writer, identities)
        except BrokenPipeError:
            pass  # the reader stopped early (client went away)
        except Exception as error:
            self.error = error
        finally:
            try:
                self._writer.close()
            except BrokenPipeError:
                pass

    def close(self) -> None:
        self.reader.close()
        self._thread.join(timeout=30)


@contextmanager
def open_plain(
    *, storage: BackupStorage, path: str, stored_sha256: str, plain_sha256: str, encrypted: bool, identities: list
) -> Iterator[Iterator[bytes]]:
    """Chunks of the plain dump, verified: the stored checksum before the first
    byte, the plain checksum after the last (``IntegrityError`` on mismatch)."""
    verify_stored(storage=storage, path=path, expected_sha256=stored_sha256)
    if encrypted and not identities:
        raise EncryptionError("El backup está cifrado y no hay clave: configura BACKUP_AGE_IDENTITY_FILE.")
    with storage.open_read(path) as raw:
        decrypting = _DecryptingPipe(raw, identities) if encrypted else None
        try:
            compressed = decrypting.reader if decrypting else raw
            yield _plain_chunks(compressed, plain_sha256, decrypting)
        finally:
            if decrypting:
                decrypting.close()


def _plain_chunks(compressed: BinaryIO, plain_sha256: str, decrypting: _DecryptingPipe | None) -> Iterator[bytes]:
    """The last chunk is held back until the checks pass: whoever reads (a
    download, psql) never gets the whole of a stream that turns out wrong."""
    plain = MeasuringReader(zstandard.ZstdDecompressor().stream_reader(compressed, read_size=CHUNK_SIZE))
    held = b""
    try:
        while chunk := plain.read(CHUNK_SIZE):
            if held:
                yield held
            held = chunk
    except zstandard.ZstdError as error:
        raise IntegrityError(f"El backup está dañado (zstd): {error}") from None
    if decrypting and decrypting.error:
        raise EncryptionError(f"No se pudo descifrar el backup: {decrypting.error}")
    if plain.sha256.hexdigest() != plain_sha256:
        raise IntegrityError("El contenido descomprimido no coincide con su checksum.")
    if held:
        yield held
