"""The progress hook of long operations: one optional callable passed down from
the caller (a job, a command's progress bar) to the services and the engine.

``progress(phase=None, *, bytes_done=None, bytes_total=None, rows_done=None,
rows_total=None)``: every argument is optional, and a value left out keeps its
last one. It is called often (every 64 KiB chunk), so it must be cheap; a
caller that writes somewhere throttles itself (``apps.backups.jobs.progress``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

Progress = Callable[..., None]


def progress_noop(*args, **kwargs) -> None:
    return None


def chunks_counted(chunks: Iterable[bytes], progress: Progress | None) -> Iterable[bytes]:
    """``chunks``, reporting the bytes that went through as ``bytes_done``."""
    if progress is None:
        return chunks
    return _counted(chunks, progress)


def _counted(chunks: Iterable[bytes], progress: Progress) -> Iterator[bytes]:
    done = 0
    for chunk in chunks:
        done += len(chunk)
        progress(bytes_done=done)
        yield chunk


class CountingReader:
    """A reader that reports the bytes read from it as ``bytes_done``."""

    def __init__(self, source: BinaryIO, progress: Progress):
        self._source, self._progress, self.done = source, progress, 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self.done += len(data)
            self._progress(bytes_done=self.done)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


def reader_counted(source: BinaryIO, progress: Progress | None) -> BinaryIO:
    return source if progress is None else CountingReader(source, progress)
