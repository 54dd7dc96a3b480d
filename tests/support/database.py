"""Helpers to compare clinic data at the row level, and scratch databases."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from apps.backups.engine.pg_clients import find_client, libpq_params


def table_hashes(
    schema: str, *, dbname: str | None = None, exclude_prefix: str | tuple[str, ...] = ("backups_", "axes_")
) -> dict[str, str]:
    """Ordered row hash of every table of ``schema``: equal hashes, equal rows. The
    backup history and the sign-in records (kept across restores) are left out."""
    params = libpq_params() | ({"dbname": dbname} if dbname else {})
    with psycopg.connect(**params) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema])
        tables = [row[0] for row in cursor.fetchall() if not row[0].startswith(exclude_prefix)]
        hashes = {}
        for table in tables:
            cursor.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {}.{} t"
                ).format(sql.Identifier(schema), sql.Identifier(table))
            )
            count, digest = cursor.fetchone()
            hashes[table] = f"{count}:{digest}"
        return hashes


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    admin = libpq_params() | {"dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def psql_load(dump: bytes, dbname: str) -> None:
    """Replay a plain SQL dump with psql, in one transaction, stopping at the first error."""
    from django.db import connection

    from apps.backups.engine.pg_clients import server_major

    # The dump came from the pg_dump chosen for this server: the same rule picks its psql.
    psql = find_client("psql", min_major=server_major(connection))
    params = libpq_params() | {"dbname": dbname}
    env = {
        "PGHOST": params.get("host", ""),
        "PGPORT": params.get("port", ""),
        "PGUSER": params.get("user", ""),
        "PGPASSWORD": params.get("password", ""),
        "PGDATABASE": dbname,
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [psql.path, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"],
        input=dump,
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()
