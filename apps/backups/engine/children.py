"""The client processes a backup runs (pg_dump, pg_dump --schema-only, pg_restore,
psql), started, watched and ended in one place.

Each runs in a process group of its own, registered with
``apps.backups.interrupts``: SIGTERM or Ctrl-C to the command ends the group
(a wrapper script's children too), so whoever waits on it (reading its output,
``finish()``) sees it end and the stop request. When the block ends, whatever
is still running of the group is killed and reaped, and its pipes are closed.
Its stderr is drained on a thread into a short tail, for error messages.
"""

from __future__ import annotations

import collections
import io
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from apps.backups.engine.pg_messages import pg_values_removed
from apps.backups.errors import BackupInterruptedError, DumpError
from apps.backups.interrupts import child_forget, child_register, process_group_signal, stop_requested

STDERR_TAIL_LINES = 20
READER_JOIN_SECONDS = 5


class Child:
    """A running client: ``stdin`` (when asked for), ``stdout``, and its stderr's last lines."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.stdin: BinaryIO | None = process.stdin
        self.stdout: BinaryIO = process.stdout
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_reader = threading.Thread(target=self._drain, args=(process.stderr,), daemon=True)

    def _start(self) -> None:
        self._stderr_reader.start()

    def _drain(self, stream: BinaryIO) -> None:
        for line in iter(io.BufferedReader(stream).readline, b""):
            self._stderr_tail.append(pg_values_removed(line.decode("utf-8", "replace")))

    def finish(self) -> int:
        """Wait for the exit code, and for stderr to be read to its end."""
        code = self.process.wait()
        self._stderr_reader.join()
        return code

    def stderr_text(self) -> str:
        return " ".join(line.strip() for line in self._stderr_tail) or "sin mensaje"

    def failure(self, what: str) -> BackupInterruptedError | DumpError:
        """Why ``what`` exited with a non-zero code: we ended it, or it failed."""
        if stop_requested():
            return BackupInterruptedError()  # not a reason to try another method or format
        code = self.process.returncode
        how = f"terminado por la señal {-code}" if code < 0 else f"código {code}"
        return DumpError(f"{what} falló ({how}): {self.stderr_text()}")

    def _end(self) -> None:
        child_forget(self.process)
        process_group_signal(self.process, signal.SIGKILL)  # unless reaped: running, or children left
        self.process.wait()
        if self._stderr_reader.ident is not None:  # started
            self._stderr_reader.join(timeout=READER_JOIN_SECONDS)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass  # stdin: the child had stopped reading


@contextmanager
def child_process(arguments: list[str], *, what: str, env: dict[str, str], stdin: int) -> Iterator[Child]:
    """Run ``arguments`` with ``stdout`` and ``stderr`` piped (``stdin``: ``subprocess.PIPE``
    or ``DEVNULL``). ``BackupInterruptedError`` instead of starting once a stop was
    requested; ``DumpError`` naming ``what`` when it cannot be started."""
    if stop_requested():
        raise BackupInterruptedError
    try:
        process = subprocess.Popen(
            arguments,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            bufsize=0,  # unbuffered: one read() is one syscall and no extra copy
            process_group=0,
        )
    except OSError as error:
        raise DumpError(f"No se pudo ejecutar {what} ({arguments[0]}): {error.strerror}") from None
    child = Child(process)
    child_register(process)
    try:
        child._start()
        yield child
    finally:
        child._end()
