"""Dumping one clinic schema as a stream of bytes: pg_dump (plain SQL) or the
JSON fallback (Django's ``dumpdata`` format). Both read one exported snapshot."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections, transaction

from apps.backups.engine.children import Child, child_process
from apps.backups.engine.naming import validate_schema_name
from apps.backups.engine.pg_clients import PgClient, libpq_environment
from apps.backups.engine.snapshot import query_cancel
from apps.backups.errors import BackupInterruptedError, DumpError
from apps.backups.interrupts import on_stop, stop_requested

CHUNK_SIZE = 64 * 1024  # see apps.backups.engine.pipeline.CHUNK_SIZE
READER_ALIAS = "backup_reader"


# pg_dump's last comment in every plain dump; only newer versions add lines after it.
DUMP_COMPLETE_MARKER = b"-- PostgreSQL database dump complete"
OUTPUT_TAIL_BYTES = 1024


class PgDumpOutput:
    """pg_dump's stdout as a readable stream. At end of stream the exit code is
    checked, then that the dump ends as pg_dump ends a complete one; a failure
    raises ``DumpError`` with the tail of stderr (``BackupInterruptedError`` when
    a stop request ended it)."""

    def __init__(self, child: Child):
        self._child = child
        self._output_tail = b""
        self.bytes_read = 0

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        data = self._child.stdout.read(size if size and size > 0 else CHUNK_SIZE)
        if data:
            self.bytes_read += len(data)
            # The last kilobyte only (no copy of the chunk itself): where the end marker is.
            recent = data[-OUTPUT_TAIL_BYTES:] if len(data) >= OUTPUT_TAIL_BYTES else self._output_tail + data
            self._output_tail = recent[-OUTPUT_TAIL_BYTES:]
            return data
        self._finish()
        return b""

    def _finish(self) -> None:
        if self._child.finish() != 0:
            raise self._child.failure("pg_dump")  # interrupted: not a reason to try JSON
        if DUMP_COMPLETE_MARKER not in self._output_tail:
            written = f"{self.bytes_read} bytes" if self.bytes_read else "nada"
            raise DumpError(f"pg_dump terminó sin error pero su volcado está incompleto (escribió {written}).")


def pg_dump_arguments(*, client: PgClient, schema_name: str, sql_style: str, snapshot_id: str | None) -> list[str]:
    arguments = [
        client.path,
        "--format=p",
        "--no-owner",
        "--no-privileges",
        "--encoding=UTF8",
        f"--schema={validate_schema_name(schema_name)}",
    ]
    if snapshot_id:
        arguments.append(f"--snapshot={snapshot_id}")
    if sql_style == "inserts":
        arguments += ["--inserts", f"--rows-per-insert={settings.BACKUP_ROWS_PER_INSERT}"]
    elif sql_style != "copy":
        raise DumpError(f"BACKUP_SQL_STYLE debe ser 'copy' o 'inserts', no {sql_style!r}.")
    return arguments


@contextmanager
def pg_dump_stream(
    *, client: PgClient, schema_name: str, sql_style: str, snapshot_id: str | None
) -> Iterator[PgDumpOutput]:
    """Run pg_dump for one schema; the child is killed if the reader stops early."""
    arguments = pg_dump_arguments(client=client, schema_name=schema_name, sql_style=sql_style, snapshot_id=snapshot_id)
    with child_process(arguments, what="pg_dump", env=libpq_environment(), stdin=subprocess.DEVNULL) as child:
        yield PgDumpOutput(child)


# What users' groups and permissions point at: without them a clinic whose users
# belong to a group could not be loaded back (users_user_groups → auth_group).
JSON_CATALOG_MODELS = {"contenttypes": ["ContentType"], "auth": ["Permission", "Group"]}


def json_models() -> list:
    """Models of the clinic data apps, plus content types, permissions and groups,
    in dependency order, as dumpdata sorts them."""
    app_list = [
        (apps.get_app_config(label), [apps.get_model(label, name) for name in names])
        for label, names in JSON_CATALOG_MODELS.items()
    ]
    app_list += [(apps.get_app_config(label), None) for label in settings.CLINIC_DATA_APPS]
    return serializers.sort_dependencies(app_list)


def json_dump_chunks(
    *, schema_name: str, snapshot_id: str | None, batch_size: int = 1000, counts: dict[str, int] | None = None
) -> Iterator[bytes]:
    """The clinic data apps as one JSON array (``loaddata``-compatible), produced
    batch by batch inside one REPEATABLE READ transaction on its own connection.
    ``counts``, when given, receives the rows written per table, for the caller
    to compare with the snapshot's. A database failure (the snapshot gone, the
    connection lost) is a ``DumpError``."""
    validate_schema_name(schema_name)
    try:
        yield from _json_chunks(schema_name, snapshot_id, batch_size, {} if counts is None else counts)
    except DatabaseError as error:
        if stop_requested():
            raise BackupInterruptedError from None
        raise DumpError(f"No se pudo exportar {schema_name} en JSON: {str(error).strip()}") from None


def _json_chunks(schema_name: str, snapshot_id: str | None, batch_size: int, counts: dict) -> Iterator[bytes]:
    python_serializer = serializers.get_serializer("python")
    reader = connections[READER_ALIAS]
    # The reader connection is ours alone: switch its schema here, restore it below.
    reader.set_schema(schema_name)
    try:
        # A lock held elsewhere may keep a query waiting.
        with transaction.atomic(using=READER_ALIAS), on_stop(lambda: query_cancel(reader.connection)):
            with reader.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if snapshot_id:
                    cursor.execute("SET TRANSACTION SNAPSHOT %s", [snapshot_id])
            yield b"["
            first = True
            for model in json_models():
                if stop_requested():  # before each table, and each batch below
                    raise BackupInterruptedError
                if model._meta.proxy:
                    continue  # as dumpdata: a proxy's rows are its concrete model's
                queryset = model._default_manager.using(READER_ALIAS).order_by(model._meta.pk.name)
                table = model._meta.db_table
                counts.setdefault(table, 0)
                batch = []
                for obj in queryset.iterator(chunk_size=batch_size):
                    counts[table] += 1
                    batch.append(obj)
                    if len(batch) == batch_size:
                        if stop_requested():
                            raise BackupInterruptedError
                        yield _serialize_batch(python_serializer, batch, first)
                        first, batch = False, []
                if batch:
                    yield _serialize_batch(python_serializer, batch, first)
                    first = False
            yield b"\n]\n"
    finally:
        reader.set_schema_to_public()


class ExactJSONEncoder(DjangoJSONEncoder):
    """Django's encoder truncates times to milliseconds; a backup keeps them whole."""

    def default(self, o):
        if isinstance(o, datetime.datetime | datetime.time):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().default(o)


def _serialize_batch(serializer_class, batch: list, first: bool) -> bytes:
    objects = serializer_class().serialize(batch)
    text = ",".join("\n" + json.dumps(item, cls=ExactJSONEncoder, ensure_ascii=False) for item in objects)
    return (text if first else "," + text).encode("utf-8")
