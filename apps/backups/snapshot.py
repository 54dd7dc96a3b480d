"""One consistent view of a clinic schema for the whole backup.

A separate connection opens a REPEATABLE READ transaction and exports its
snapshot; pg_dump (``--snapshot``) or the JSON exporter (``SET TRANSACTION
SNAPSHOT``) read exactly what the manifest's row counts were taken from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from apps.backups.errors import DumpError
from apps.backups.naming import validate_schema_name
from apps.backups.pg_clients import libpq_params


@dataclass
class SchemaSnapshot:
    snapshot_id: str
    row_counts: dict[str, int] = field(default_factory=dict)
    migrations: list[list[str]] = field(default_factory=list)


@contextmanager
def schema_snapshot(schema_name: str) -> Iterator[SchemaSnapshot]:
    validate_schema_name(schema_name)
    try:
        connection = psycopg.connect(**libpq_params(), autocommit=True)
    except psycopg.OperationalError as error:
        raise DumpError(f"No se puede conectar a la base de datos: {str(error).strip()}") from None
    with connection, connection.cursor() as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = SchemaSnapshot(snapshot_id=cursor.fetchone()[0])
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema_name])
        for (table,) in cursor.fetchall():
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema_name), sql.Identifier(table))
            )
            snapshot.row_counts[table] = cursor.fetchone()[0]
        if "django_migrations" in snapshot.row_counts:
            cursor.execute(
                sql.SQL("SELECT app, name FROM {}.django_migrations ORDER BY id").format(sql.Identifier(schema_name))
            )
            snapshot.migrations = [list(row) for row in cursor.fetchall()]
        try:
            yield snapshot
        finally:
            cursor.execute("ROLLBACK")
