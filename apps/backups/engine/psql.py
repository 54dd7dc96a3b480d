"""Replaying SQL with psql: one transaction, stop at the first error."""

from __future__ import annotations

import collections
import subprocess
import threading
from collections.abc import Iterable

from apps.backups.engine.pg_clients import PgClient, libpq_environment
from apps.backups.errors import RestoreError

STDERR_TAIL_LINES = 20


def psql_run(*, client: PgClient, chunks: Iterable[bytes], database: dict | None = None) -> None:
    """Feed ``chunks`` to ``psql -X --single-transaction -v ON_ERROR_STOP=1``.

    Without ON_ERROR_STOP psql carries on after an error (and psql 15+ then
    commits); with it, any error rolls the whole transaction back. ``-X``
    ignores any ~/.psqlrc. Raises ``RestoreError`` with psql's last lines.
    """
    process = subprocess.Popen(
        [client.path, "-X", "-q", "--no-psqlrc", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=libpq_environment(database),
    )
    tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)

    def drain() -> None:
        for line in iter(process.stderr.readline, b""):
            tail.append(line.decode("utf-8", "replace").strip())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        for chunk in chunks:
            process.stdin.write(chunk)
        process.stdin.close()
    except BrokenPipeError:
        pass  # psql stopped early: its exit code and stderr say why
    except BaseException:
        process.kill()
        raise
    finally:
        code = process.wait()
        reader.join(timeout=10)
        process.stderr.close()
    if code != 0:
        detail = " | ".join(line for line in tail if line) or "sin mensaje"
        raise RestoreError(f"psql falló (código {code}); no se cambió nada: {detail}")
