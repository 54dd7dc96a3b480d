"""Replaying SQL with psql: one transaction that only our own last line commits.

``psql --single-transaction`` reading from a pipe is not safe for a restore:
when its input ends early (the process feeding it killed, a cut stream) psql
ends the COPY in progress, runs ``COMMIT`` and exits 0, committing whatever
half of the script it had. So the transaction is ours: ``BEGIN`` is the first
line we send and ``COMMIT`` is sent only after the last chunk of ``chunks`` was
produced, i.e. after the iterator has verified the whole dump (its checksum is
checked before its last chunk is yielded). If the input ends anywhere before
that, psql reaches end of input inside an open transaction, exits, and the
server rolls the transaction back when its session ends.
"""

from __future__ import annotations

import collections
import subprocess
import threading
from collections.abc import Iterable, Iterator

from apps.backups.engine.pg_clients import PgClient, libpq_environment
from apps.backups.engine.pg_messages import pg_values_removed
from apps.backups.errors import RestoreFailedError

STDERR_TAIL_LINES = 20
APPLICATION_NAME = "psicoadmin-restore-psql"  # how operators (and tests) spot it in pg_stat_activity
# Printed by psql only once COMMIT has succeeded: proof the load was committed.
COMMITTED_MARKER = b"psicoadmin-restore-committed"


def psql_script(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``BEGIN``, the chunks, then ``COMMIT`` and the marker: the tail is produced
    only when ``chunks`` is exhausted without error."""
    yield b"BEGIN;\n"
    yield from chunks
    # No leading ";" to close a last statement left open: a verified dump has none
    # (merged with ours it would fail and roll back), and psql 15 silently stops
    # reading its script at an empty statement right after a COPY block.
    yield b"\nCOMMIT;\n\\echo " + COMMITTED_MARKER + b"\n"


def psql_run(*, client: PgClient, chunks: Iterable[bytes], database: dict | None = None) -> None:
    """Replay ``chunks`` with ``psql -X -v ON_ERROR_STOP=1`` in one transaction
    that commits only if every chunk was sent (see the module docstring).

    With ON_ERROR_STOP any error stops psql and the transaction is rolled back.
    ``-X`` ignores any ~/.psqlrc. A failure raises ``RestoreFailedError`` (a
    server-side fault: the dump is ours and verified) with psql's last lines.
    """
    environment = libpq_environment(database) | {"PGAPPNAME": APPLICATION_NAME}
    process = subprocess.Popen(
        [client.path, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
    committed = threading.Event()

    def drain_stderr() -> None:
        for line in iter(process.stderr.readline, b""):
            # Row values PostgreSQL quotes (a COPY's row, a key, a failing row) are clinical data.
            tail.append(pg_values_removed(line.decode("utf-8", "replace").strip()))

    def drain_stdout() -> None:
        for line in iter(process.stdout.readline, b""):
            if line.rstrip(b"\n") == COMMITTED_MARKER:
                committed.set()

    readers = [threading.Thread(target=target, daemon=True) for target in (drain_stderr, drain_stdout)]
    for reader in readers:
        reader.start()
    try:
        for chunk in psql_script(chunks):
            process.stdin.write(chunk)
        process.stdin.close()
    except BrokenPipeError:
        pass  # psql stopped early: its exit code and stderr say why
    except BaseException:
        # The source failed (a checksum, a read): psql must not see end of input
        # as the end of the script. Killed, its session's transaction is rolled back.
        process.kill()
        raise
    finally:
        code = process.wait()
        for reader in readers:
            reader.join(timeout=10)
        process.stdout.close()
        process.stderr.close()
    if code != 0:
        detail = " | ".join(line for line in tail if line) or "sin mensaje"
        raise RestoreFailedError(f"psql falló (código {code}); no se cambió nada: {detail}")
    if not committed.is_set():
        raise RestoreFailedError(
            "psql terminó sin confirmar la carga (su entrada acabó antes de tiempo); no se cambió nada."
        )
