"""The clinic's plain SQL dump at a cost that follows the clinic's size, not the
database's: pre-data DDL + rows as ``COPY … FROM stdin`` blocks + sequence
values + post-data DDL, in pg_dump's order and with pg_dump's framing, so the
file is what ``pg_dump --schema=<clinic>`` writes and stock ``psql -X -1 -v
ON_ERROR_STOP=1 -f`` replays it.

- The DDL comes from the cache of ``apps.backups.engine.ddl`` (pg_dump's own
  text for the structure, filled once per structure and pg_dump version).
- The structure, its fingerprint and the sequences' values are read by
  namespace-filtered, index-driven queries inside the backup's snapshot
  (``apps.backups.engine.structure``).
- The rows: one ``psql`` child imports the snapshot, locks the tables as pg_dump
  does, and runs ``COPY <table> (<columns>) TO STDOUT`` for each, with pg_dump's
  comment and ``COPY … FROM stdin;`` … ``\\.`` framing echoed around each block.
  psql streams, so memory stays bounded whatever the clinic's size.

``sql_dump_stream`` chooses the method: this one, or pg_dump itself for the
``inserts`` style, for a schema holding objects this dump does not reproduce
(views, functions, triggers…), or whose DDL cannot be templated. The choice and
its reason are returned for the manifest and logged.
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from django.db import DatabaseError, connections, transaction

from apps.backups.engine.children import Child, child_process
from apps.backups.engine.ddl import DdlNotTemplatableError, SchemaDdlText, ddl_fill, ddl_render
from apps.backups.engine.dumpers import CHUNK_SIZE, DUMP_COMPLETE_MARKER, READER_ALIAS, pg_dump_stream
from apps.backups.engine.naming import validate_schema_name
from apps.backups.engine.pg_clients import PgClient, libpq_environment
from apps.backups.engine.snapshot import query_cancel
from apps.backups.engine.structure import SchemaStructure, schema_structure_read, sequence_values_read
from apps.backups.errors import BackupInterruptedError, DumpError
from apps.backups.interrupts import on_stop, stop_requested

logger = logging.getLogger(__name__)

METHOD_COPY = "ddl_cache_copy"
METHOD_PG_DUMP = "pg_dump"
APPLICATION_NAME = "psicoadmin-backup-copy"
COPY_END = "\\.\n\n"  # pg_dump's end of a COPY block; \qecho adds the third newline


@dataclass
class DumpMethod:
    """What produced a SQL dump: recorded in the manifest."""

    method: str
    reason: str = ""  # why pg_dump rather than the cached-DDL dump
    ddl_cache: str = ""  # "hit" | "filled" (cached-DDL dump only)
    fingerprint: str = ""
    pg_dump_version: str = ""  # the pg_dump that wrote the DDL (and so what psql must understand)
    ddl_fill_seconds: float | None = None

    def as_manifest(self) -> dict:
        return {
            "method": self.method,
            "reason": self.reason or None,
            "ddl_cache": self.ddl_cache or None,
            "structure_fingerprint": self.fingerprint or None,
            "ddl_pg_dump_version": self.pg_dump_version or None,
            "ddl_fill_seconds": self.ddl_fill_seconds,
        }


# Reading the structure in the snapshot -----------------------------------------------------


def _structure_in_snapshot(schema_name: str, snapshot_id: str | None):
    """(structure, sequence values), read inside the snapshot on the backup reader
    connection (this thread's own; kept open between backups, so its catalog
    caches stay warm and no connection is opened per backup)."""
    reader = connections[READER_ALIAS]
    try:
        with (
            transaction.atomic(using=READER_ALIAS),
            reader.cursor() as cursor,
            on_stop(lambda: query_cancel(reader.connection)),  # a lock held elsewhere may keep it waiting
        ):
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if snapshot_id:
                cursor.execute("SET TRANSACTION SNAPSHOT %s", [snapshot_id])
            # Expressions printed fully qualified whatever the session's search_path.
            cursor.execute("SELECT pg_catalog.set_config('search_path', '', true)")
            structure = schema_structure_read(cursor, schema_name)
            values = sequence_values_read(cursor, structure) if structure and not structure.unsupported else []
    except DatabaseError as error:
        if stop_requested():
            raise BackupInterruptedError from None
        raise DumpError(f"No se pudo leer la estructura de {schema_name}: {str(error).strip()}") from None
    return structure, values


# The rows, through psql -----------------------------------------------------------------------


def psql_quote(text: str) -> str:
    """``text`` as one single-quoted argument of a psql meta-command (``\\qecho``)."""
    escaped = text.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def copy_script(*, structure: SchemaStructure, snapshot_id: str | None) -> str:
    """The psql script that writes the data section: pg_dump's framing around
    ``COPY … TO STDOUT`` of every table, in one transaction on the snapshot."""
    schema = structure.quoted_schema
    lines = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"]
    if snapshot_id:
        lines.append(f"SET TRANSACTION SNAPSHOT {psql_sql_literal(snapshot_id)};")
    # pg_dump's session settings: the same text for every value, the same row order.
    lines += [
        "SET LOCAL datestyle = ISO;",
        "SET LOCAL intervalstyle = postgres;",
        "SET LOCAL extra_float_digits = 3;",
        "SET LOCAL synchronize_seqscans = off;",
        "SET LOCAL row_security = off;",
        "SET LOCAL statement_timeout = 0;",
    ]
    if structure.tables:
        tables = ", ".join(f"{schema}.{table.quoted}" for table in structure.tables)
        lines.append(f"LOCK TABLE {tables} IN ACCESS SHARE MODE;")
    for table in structure.tables:
        qualified = f"{schema}.{table.quoted}"
        header = (
            "--\n"
            f"-- Data for Name: {table.name}; Type: TABLE DATA; Schema: {structure.schema_name}; Owner: -\n"
            "--\n\n"
            f"COPY {qualified} ({table.columns}) FROM stdin;"
        )
        lines.append(f"\\qecho {psql_quote(header)}")
        lines.append(f"COPY {qualified} ({table.columns}) TO STDOUT;")
        lines.append(f"\\qecho {psql_quote(COPY_END)}")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def psql_sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sequence_set_text(structure: SchemaStructure, values) -> bytes:
    parts = []
    for sequence, last_value, is_called in values:
        literal = psql_sql_literal(f"{structure.quoted_schema}.{sequence.quoted}")
        parts.append(
            "--\n"
            f"-- Name: {sequence.name}; Type: SEQUENCE SET; Schema: {structure.schema_name}; Owner: -\n"
            "--\n\n"
            f"SELECT pg_catalog.setval({literal}, {int(last_value)}, {'true' if is_called else 'false'});\n\n\n"
        )
    return "".join(parts).encode("utf-8")


class CopyDumpOutput:
    """The whole plain dump as a readable stream: pre-data, psql's output, then
    sequence values and post-data. A psql failure raises ``DumpError``
    (``BackupInterruptedError`` when a stop request ended it)."""

    def __init__(self, *, head: bytes, child: Child, tail: bytes):
        self._head = io.BytesIO(head)
        self._child = child
        self._tail = io.BytesIO(tail)
        self._stage = 0
        self.bytes_read = 0

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        size = size if size and size > 0 else CHUNK_SIZE
        while True:
            if self._stage == 0:
                data = self._head.read(size)
            elif self._stage == 1:
                data = self._child.stdout.read(size)
                if not data and self._child.finish() != 0:
                    raise self._child.failure("psql (COPY de las filas)")
            elif self._stage == 2:
                data = self._tail.read(size)
            else:
                return b""
            if data:
                self.bytes_read += len(data)
                return data
            self._stage += 1


@contextmanager
def copy_dump_stream(
    *, psql: str, structure: SchemaStructure, values, pre: bytes, post: bytes, snapshot_id: str | None
) -> Iterator[CopyDumpOutput]:
    environment = libpq_environment()
    environment["PGCLIENTENCODING"] = "UTF8"
    environment["PGAPPNAME"] = APPLICATION_NAME
    arguments = [psql, "-X", "-q", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    with child_process(arguments, what="psql", env=environment, stdin=subprocess.PIPE) as child:
        try:
            # A few kilobytes: psql reads it whole before its output can fill the pipe.
            child.stdin.write(copy_script(structure=structure, snapshot_id=snapshot_id).encode("utf-8"))
            child.stdin.close()
        except BrokenPipeError:
            pass  # psql ended at once: its exit code and stderr say why
        yield CopyDumpOutput(head=pre, child=child, tail=sequence_set_text(structure, values) + post)


# Choosing the method -----------------------------------------------------------------------------


def _sibling(client: PgClient, name: str) -> str | None:
    path = Path(client.path).with_name(name)
    return str(path) if path.exists() else None


class DdlCache(Protocol):
    """Where DDL is kept between backups (``apps.backups.ddl_cache.store.DatabaseDdlCache``,
    passed in by services.py). ``lookup`` answers an object with ``SchemaDdlText``'s
    attributes, or ``None``."""

    def lookup(self, *, fingerprint: str, pg_dump_version: str): ...

    def save(self, ddl: SchemaDdlText, *, source_schema: str) -> None: ...


@contextmanager
def sql_dump_stream(
    *, client: PgClient, schema_name: str, sql_style: str, snapshot_id: str | None, ddl_cache: DdlCache
) -> Iterator[tuple[object, DumpMethod]]:
    """The clinic's plain SQL dump as a stream, and how it was made.

    The cached-DDL dump when it reproduces the schema faithfully; otherwise
    pg_dump (whose cost grows with the whole database's catalog), logged.
    """
    validate_schema_name(schema_name)
    method, parts = _method_choose(
        client=client, schema_name=schema_name, sql_style=sql_style, snapshot_id=snapshot_id, ddl_cache=ddl_cache
    )
    if parts is not None:
        structure, values, pre, post, psql = parts
        with copy_dump_stream(
            psql=psql, structure=structure, values=values, pre=pre, post=post, snapshot_id=snapshot_id
        ) as output:
            yield output, method
        return
    logger.warning("Backup de %s con pg_dump completo: %s", schema_name, method.reason)
    with pg_dump_stream(client=client, schema_name=schema_name, sql_style=sql_style, snapshot_id=snapshot_id) as output:
        yield output, method


def _method_choose(*, client: PgClient, schema_name: str, sql_style: str, snapshot_id: str | None, ddl_cache):
    """(method, the cached-DDL dump's parts or ``None`` for pg_dump)."""

    def pg_dump(reason: str, **extra) -> tuple[DumpMethod, None]:
        return DumpMethod(method=METHOD_PG_DUMP, reason=reason, pg_dump_version=client.version, **extra), None

    if sql_style == "inserts":
        return pg_dump("BACKUP_SQL_STYLE=inserts: las filas como INSERT las escribe pg_dump.")
    if sql_style != "copy":
        raise DumpError(f"BACKUP_SQL_STYLE debe ser 'copy' o 'inserts', no {sql_style!r}.")
    psql = _sibling(client, "psql")
    if psql is None or _sibling(client, "pg_restore") is None:
        return pg_dump(f"No hay psql/pg_restore junto a {client.path}.")
    structure, values = _structure_in_snapshot(schema_name, snapshot_id)
    if structure is None:
        raise DumpError(f"El esquema {schema_name} no existe.")
    if structure.unsupported:
        return pg_dump("El esquema tiene objetos que solo pg_dump reproduce: " + "; ".join(structure.unsupported))
    ddl = ddl_cache.lookup(fingerprint=structure.fingerprint, pg_dump_version=client.version)
    cache_state = "hit"
    if ddl is None:
        try:
            ddl = ddl_fill(client=client, structure=structure, snapshot_id=snapshot_id)
        except DumpError as error:
            # Not templatable, or pg_dump --schema-only failed: the full pg_dump decides (and,
            # failing before writing anything, sends the backup to JSON as before).
            reason = str(error) if isinstance(error, DdlNotTemplatableError) else f"No se pudo obtener el DDL: {error}"
            return pg_dump(reason, fingerprint=structure.fingerprint)
        ddl_cache.save(ddl, source_schema=schema_name)
        cache_state = "filled"
        logger.info(
            "DDL de la estructura %s obtenido de %s con pg_dump %s en %.2f s",
            structure.fingerprint[:12],
            schema_name,
            client.version,
            ddl.fill_seconds,
        )
    pre, post = ddl_render(ddl, schema_name=schema_name, quoted_schema=structure.quoted_schema)
    if DUMP_COMPLETE_MARKER not in post:
        return pg_dump("El DDL guardado no termina como un volcado de pg_dump.", fingerprint=structure.fingerprint)
    method = DumpMethod(
        method=METHOD_COPY,
        ddl_cache=cache_state,
        fingerprint=structure.fingerprint,
        pg_dump_version=ddl.pg_dump_version,
        ddl_fill_seconds=ddl.fill_seconds,
    )
    return method, (structure, values, pre, post, psql)
