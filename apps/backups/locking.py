"""One writer per clinic: the lock that keeps backups, restores, restore drills
and disaster recoveries of the same clinic from seeing each other half-done.

Public API::

    with clinic_lock(schema_name="bienestar", operation="restore"):
        ...  # nothing else holds the clinic until the block ends

    with clinic_lock(schema_name="bienestar", operation="backup", shared=True) as lock:
        ...
        lock.ensure_held()  # before making the result visible

- ``shared=True`` (backups: they only read) may be held by several at once;
  exclusive (restores, drills, recoveries) by one, and never beside a shared one.
- Never waits: when the clinic is held, ``ClinicBusyError`` (HTTP 409) is raised
  at once, saying what holds it. Callers retry later (the scheduler at its next run).
- Holds across processes and machines: it is a PostgreSQL advisory lock in the
  database every worker uses, keyed by the clinic's schema name.
- Released by the database if the holder dies (kill -9, lost machine): the lock
  lives in a transaction of a connection of its own, which the server ends
  (rolling back) when the connection goes.
- Holds behind a transaction-mode pooler (PgBouncer, Neon's ``-pooler``
  endpoint) by construction: it is a *transaction-level* lock
  (``pg_try_advisory_xact_lock``) taken inside a transaction that stays open
  for the whole operation, so the pooler keeps that server connection assigned
  to this client until the block ends. A session-level lock, a ``SET`` or a
  temporary table would stay on a pooled server connection that the pooler
  hands to other clients (who would then share it) — none is used.
  ``tests/backups/test_locking.py`` proves it through a real PgBouncer.

While held, the connection is "idle in transaction" in ``pg_stat_activity``
(``application_name`` ``psicoadmin-lock <operation> <schema>``). It holds no
snapshot (READ COMMITTED, nothing read), so it does not hold back vacuum;
``idle_in_transaction_session_timeout`` is switched off for that transaction only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from apps.backups.engine.naming import validate_schema_name
from apps.backups.engine.pg_clients import libpq_params
from apps.backups.errors import BackupError, ClinicBusyError

# First key of every clinic lock: the application's namespace among advisory locks.
LOCK_NAMESPACE = int.from_bytes(hashlib.sha256(b"psicoadmin-clinic-lock").digest()[:4], "big", signed=True)
APPLICATION_PREFIX = "psicoadmin-lock"
OPERATIONS = {
    "backup": "un backup",
    "restore": "una restauración",
    "drill": "un simulacro de restauración",
    "recovery": "una recuperación desde el almacenamiento",
    "history": "una reconstrucción del historial de backups",
}


def clinic_lock_key(schema_name: str) -> tuple[int, int]:
    """The two int4 keys of a clinic's advisory lock (stable across processes and versions)."""
    digest = hashlib.sha256(validate_schema_name(schema_name).encode()).digest()
    return LOCK_NAMESPACE, int.from_bytes(digest[:4], "big", signed=True)


class ClinicLock:
    """A held clinic lock (yielded by ``clinic_lock``)."""

    def __init__(self, connection: psycopg.Connection, schema_name: str, operation: str):
        self._connection = connection
        self.schema_name = schema_name
        self.operation = operation

    def ensure_held(self) -> None:
        """Raise ``BackupError`` if the lock's connection was lost (and the lock with it)."""
        try:
            self._connection.execute("SELECT 1")
        except psycopg.Error:
            raise BackupError(
                f"Se perdió la conexión que reservaba la clínica {self.schema_name}; "
                "la operación se abandonó para no coincidir con otra."
            ) from None


@contextmanager
def clinic_lock(
    *, schema_name: str, operation: str, shared: bool = False, database: dict | None = None
) -> Iterator[ClinicLock]:
    """Hold the clinic for ``operation`` ("backup", "restore", "drill", "recovery")
    until the block ends; ``ClinicBusyError`` at once if something else holds it.
    ``database``: Django-style settings of another database (tests; default: ours)."""
    schema_name = validate_schema_name(schema_name)
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    application_name = f"{APPLICATION_PREFIX} {operation} {schema_name}"[:63]
    try:
        connection = psycopg.connect(**libpq_params(database), autocommit=True, application_name=application_name)
    except psycopg.OperationalError as error:
        raise BackupError(
            f"No se puede conectar a la base de datos para reservar la clínica: {str(error).strip()}"
        ) from None
    with connection:
        try:
            acquired = _acquire(connection, schema_name, shared)
        except psycopg.Error as error:
            raise BackupError(f"No se pudo reservar la clínica {schema_name}: {str(error).strip()}") from None
        if not acquired:
            holder = _holder(connection, schema_name)
            connection.execute("ROLLBACK")
            what = OPERATIONS.get(holder, "otra operación de backup o restauración")
            raise ClinicBusyError(
                f"La clínica {schema_name} está ocupada: hay {what} en curso. "
                f"No se hizo nada; inténtalo de nuevo cuando termine."
            )
        try:
            yield ClinicLock(connection, schema_name, operation)
        finally:
            try:
                connection.execute("ROLLBACK")
            except psycopg.Error:
                pass  # the connection is gone: the server ended the transaction, and the lock with it


def _acquire(connection: psycopg.Connection, schema_name: str, shared: bool) -> bool:
    function = "pg_try_advisory_xact_lock_shared" if shared else "pg_try_advisory_xact_lock"
    connection.execute("BEGIN")
    # Pooled/managed databases may end idle transactions; this one must last the operation.
    connection.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
    row = connection.execute(f"SELECT {function}(%s, %s)", clinic_lock_key(schema_name)).fetchone()
    return bool(row[0])


def _holder(connection: psycopg.Connection, schema_name: str) -> str | None:
    """The operation holding the clinic, from its connection's application_name."""
    first, second = clinic_lock_key(schema_name)
    row = connection.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
        "AND l.classid = (%s::bigint & 4294967295)::oid AND l.objid = (%s::bigint & 4294967295)::oid LIMIT 1",
        [first, second],
    ).fetchone()
    parts = (row[0] if row else "").split(" ")
    return parts[1] if len(parts) >= 2 and parts[0] == APPLICATION_PREFIX else None


def clinic_busy(schema_name: str) -> str | None:
    """What holds the clinic now ("backup", "restore", …), or None (for reports)."""
    with psycopg.connect(**libpq_params(), autocommit=True) as connection:
        return _holder(connection, schema_name)
