"""Refusing a transaction-mode connection pooler in front of PostgreSQL.

django-tenants switches clinic with ``SET search_path`` in one statement and
queries in the next. Behind a pooler in transaction mode (PgBouncer
``pool_mode = transaction``: Neon's ``-pooler`` endpoint, Supabase's port 6543)
each transaction may run on a different server connection, so a query can run
with another request's ``search_path``: one clinic sees another's data. Session
state is also what pg_dump's exported snapshot, the restore's psql session and
advisory locks rely on. Rather than make every database use pooler-proof, the
application refuses to start behind one (README: "Security") and names the
direct endpoint.

Two ways to tell:

- the host name of the known pooled endpoints (no connection needed);
- the behaviour: two client connections open at the same time each ask for
  their server process id a few times. Without a pooler, or behind a pooler in
  session mode, each client keeps its own server process. Behind a transaction
  (or statement) pooler a client's server process changes between
  transactions, or the other client is handed the one just released (PgBouncer
  reuses the most recently released server connection first).
"""

from __future__ import annotations

import psycopg

CHECK_ID = "tenants.E001"
_PROBE_ROUNDS = 5


def pooler_problem(database: dict) -> str | None:
    """Why ``database`` (a ``DATABASES`` entry) must not be used, or None.

    Spanish, for operators: names the direct endpoint to use instead."""
    host = (database.get("HOST") or "").lower()
    port = str(database.get("PORT") or "5432")
    known = _known_pooled_endpoint(host, port, database.get("USER") or "")
    if known:
        return known
    if not host or host.startswith("/"):
        return None  # a Unix socket: no network pooler in between (the embedded PostgreSQL)
    return _probe(database)


def _known_pooled_endpoint(host: str, port: str, user: str) -> str | None:
    if host.startswith("ep-") and "-pooler." in host:
        direct = host.replace("-pooler.", ".", 1)
        return (
            f"DATABASE_URL usa el endpoint con pooler de Neon ({host}), PgBouncer en modo transacción: "
            f"una clínica podría ver datos de otra. Usa el endpoint directo: {direct}"
        )
    if host.endswith(".pooler.supabase.com") and port == "6543":
        ref = user.split(".", 1)[1] if "." in user else "<ref>"
        return (
            f"DATABASE_URL usa el pooler de Supabase en modo transacción ({host}:6543): "
            f"una clínica podría ver datos de otra. Usa la conexión directa db.{ref}.supabase.co:5432 "
            f"o el mismo pooler en modo sesión ({host}:5432)"
        )
    return None


def _probe(database: dict) -> str | None:
    from apps.backups.engine.pg_clients import libpq_params

    params = libpq_params(database) | {"application_name": "psicoadmin-pooler-probe", "autocommit": True}
    try:
        with psycopg.connect(**params) as first, psycopg.connect(**params) as second:
            seen_first: list[int] = []
            seen_second: list[int] = []
            for _ in range(_PROBE_ROUNDS):
                seen_first.append(first.execute("SELECT pg_backend_pid()").fetchone()[0])
                seen_second.append(second.execute("SELECT pg_backend_pid()").fetchone()[0])
            pooled = len(set(seen_first)) > 1 or len(set(seen_second)) > 1 or bool(set(seen_first) & set(seen_second))
            if not pooled:
                return None
            address, server_port = first.execute("SELECT inet_server_addr()::text, inet_server_port()").fetchone()
    except psycopg.Error:
        return None  # the database is unreachable: the command's own connection says so, in its own words
    behind = f" PostgreSQL, detrás de él, escucha en {address.split('/')[0]}:{server_port}." if address else ""
    return (
        f"DATABASE_URL ({database.get('HOST')}:{database.get('PORT') or 5432}) pasa por un pooler de conexiones "
        "en modo transacción (p. ej. PgBouncer con pool_mode = transaction): cada transacción puede ir por otra "
        f"conexión al servidor, y una clínica podría ver datos de otra.{behind} Usa el endpoint directo de la "
        "base de datos o un pooler en modo sesión."
    )


_verdicts: dict[tuple, str | None] = {}


def refuse_transaction_pooler(database: dict | None = None) -> None:
    """Raise ImproperlyConfigured behind a transaction pooler. Probed once per
    process and endpoint (the answer does not change while the process runs)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    database = database or settings.DATABASES["default"]
    key = tuple(str(database.get(name) or "") for name in ("HOST", "PORT", "NAME", "USER"))
    if key not in _verdicts:
        _verdicts[key] = pooler_problem(database)
    if _verdicts[key]:
        raise ImproperlyConfigured(f"{CHECK_ID}: {_verdicts[key]}")


def refuse_pooled_connection(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: every process that touches the database
    through Django (web requests, management commands, cron runs, task workers)
    stops at its first connection behind a transaction pooler, before any query
    of a clinic runs. The connection is closed so that a caller that catches the
    error cannot go on using it."""
    try:
        refuse_transaction_pooler(connection.settings_dict)
    except Exception:
        connection.connection.close()
        connection.connection = None
        raise
