"""Small file-like adapters the backup pipeline is built from."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import BinaryIO

DEFAULT_READ_SIZE = 64 * 1024


class IterableReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class MeasuringReader(io.RawIOBase):
    """Counts and hashes what is read through it; ``limit`` bounds the total size.

    Exceptions raised while reading (by the source or by the limit) are kept in
    ``error`` as well, because a Rust consumer (pyrage) may swallow their type.
    """

    def __init__(self, source: BinaryIO, *, limit: int | None = None, on_limit: Callable[[], Exception] | None = None):
        self._source = source
        self._limit = limit
        self._on_limit = on_limit
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """The source's bytes as they are: no extra copy (the hot path of a backup)."""
        try:
            data = self._source.read(size if size and size > 0 else DEFAULT_READ_SIZE)
        except BaseException as error:
            self.error = error
            raise
        self._account(data)
        return data

    def _account(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            self.error = self._on_limit() if self._on_limit else ValueError("límite superado")
            raise self.error
        self.sha256.update(data)

    def readinto(self, buffer) -> int:
        try:
            data = self._source.read(len(buffer))
        except BaseException as error:
            self.error = error
            raise
        self._account(data)
        buffer[: len(data)] = data
        return len(data)


class MeasuringWriter(io.RawIOBase):
    """Counts and hashes what is written through it to ``target``.

    An exception raised by the target (the storage failing mid-upload) is kept in
    ``error``, because a Rust producer (pyrage) reports it as its own error."""

    def __init__(self, target: BinaryIO):
        self._target = target
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        try:
            self._target.write(data)
        except BaseException as error:
            self.error = error
            raise
        self.size += len(data)
        self.sha256.update(data)
        return len(data)
