"""COPY-block row counting (apps/backups/engine/copy_rows.py): a dump must agree
with its snapshot before the backup may be ``succeeded``."""

from __future__ import annotations

import io
import random
import subprocess
import threading

import pytest
from django.db import connection, connections
from django_tenants.utils import schema_context

from apps.backups.engine.copy_rows import CopyRowCounter, copy_table_name
from apps.backups.errors import BackupError
from apps.backups.models import BackupRecord
from apps.backups.services import backup_create, backup_open_plain
from apps.professionals.models import Professional
from apps.tenants.services import clinic_create
from tests.backups.conftest import stored_files, write_script
from tests.backups.restore.test_crash_safety import wait_for


class Trickle(io.RawIOBase):
    """Reads of random small sizes: every pattern gets split across chunks somewhere."""

    def __init__(self, data: bytes, largest: int, seed: int):
        self._data = io.BytesIO(data)
        self._largest = largest
        self._random = random.Random(seed)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._random.randint(1, self._largest))


def counted(data: bytes, largest: int, seed: int = 0) -> CopyRowCounter:
    counter = CopyRowCounter(Trickle(data, largest, seed))
    while counter.read(65536):
        pass
    return counter


def test_counts_a_real_dump_as_its_snapshot_in_any_chunking(committed, settings):
    record = backup_create(clinic=committed["alfa"].clinic, backup_type="manual")
    with backup_open_plain(record=record) as chunks:
        dump = b"".join(chunks)
    import json

    expected = json.loads((settings.BACKUP_LOCAL_ROOT / record.manifest_path).read_text())["row_counts"]
    assert sum(expected.values()) > 1000
    for largest, seed in [(1, 0), (3, 1), (7, 2), (100, 3), (70_000, 4)]:
        counter = counted(dump, largest, seed)
        assert counter.complete and counter.counts == expected, largest


def test_tricky_rows_and_blocks():
    dump = (
        b"--\n-- dump\n--\n\nCOPY s.empty (id) FROM stdin;\n\\.\n"
        b"COPY s.after_empty (id, body) FROM stdin;\n"
        b"1\tCOPY s.fake (a) FROM stdin;\n"  # a row that looks like a header
        b"2\t\\\\.\n"  # an escaped backslash and a dot: data, not the end line
        b"3\tx\\.\n"
        b"4\tuno\\ndos\n"  # a newline inside a value is escaped
        b"\\.\n\n"
        b'COPY "s"."Qu""oted" (id) FROM stdin;\n5\n\\.\n'
        b"CREATE FUNCTION f() RETURNS void AS $$\nCOPY nothing\n$$;\n"
        b"-- PostgreSQL database dump complete\n"
    )
    for largest in (1, 2, 5, 1000):
        for seed in range(5):
            counter = counted(dump, largest, seed)
            assert counter.counts == {"empty": 0, "after_empty": 4, 'Qu"oted': 1}, (largest, seed)
            assert counter.complete
    cut = counted(dump[: dump.index(b"3\tx")], 4)
    assert not cut.complete
    assert copy_table_name("COPY alfa.users_user (id, email) FROM stdin;") == "users_user"
    assert copy_table_name("COPY alfa.t (id) TO stdout;") is None


def test_a_dump_missing_a_row_its_snapshot_has_fails_the_backup(committed, fake_pg_dump, real_pg_dump, settings):
    # A pg_dump whose output lost the first row of one table's COPY block.
    fake_pg_dump(
        f'{real_pg_dump} "$@" | awk \'/^COPY [^ ]*\\.payment_system_payment /{{print; skip=1; next}} '
        "skip==1{skip=0; next} {print}'\n"
    )
    with pytest.raises(
        BackupError, match=r"no coincide con su instantánea \(payment_system_payment: \d+ en el volcado"
    ):
        backup_create(clinic=committed["alfa"].clinic, backup_type="manual")
    with schema_context("alfa"):
        record = BackupRecord.objects.get()
    assert record.status == "failed" and "instantánea" in record.error
    assert stored_files(settings.BACKUP_LOCAL_ROOT) == []


@pytest.mark.parametrize("then", ["pg_dump reads", "pg_dump fails: JSON reads"])
def test_a_schema_swapped_in_while_pg_dump_runs_fails_the_backup(committed, settings, tmp_path, real_pg_dump, then):
    """The race of issue 11: a writer that ignores the clinic lock swaps the clinic's
    schema for a new one after the snapshot and before the dump reads it; pg_dump
    (or the JSON exporter it falls back to) resolves the names to the new schema,
    whose rows the snapshot cannot see. (pg_dump 15 itself fails on the missing
    sequences, so the JSON fallback meets the swap there too.)"""
    from apps.backups.engine.pg_clients import find_client, server_major

    real_psql = find_client("psql", min_major=server_major(connection)).path
    clinic = clinic_create(schema_name="epsilon", name="Clínica Épsilon", domain="epsilon.test.localhost")
    flag, started = tmp_path / "go", tmp_path / "started"
    script = write_script(
        tmp_path / "bin",
        "pg_dump",
        f'if [ "$1" = --version ]; then exec {real_pg_dump} --version; fi\n'
        f"touch {started}\nwhile [ ! -e {flag} ]; do sleep 0.05; done\n"
        + (f'exec {real_pg_dump} "$@"\n' if then == "pg_dump reads" else "exit 1\n"),
    )
    settings.BACKUP_PG_BIN_DIR = str(script.parent)
    try:
        with schema_context("epsilon"):
            for index in range(5):
                Professional.objects.create(
                    full_name=f"P {index}", specialty="X", license_number=f"E-{index}", session_fee=1
                )
        outcome: dict = {}

        def backup() -> None:
            try:
                backup_create(clinic=clinic, backup_type="manual")
            except BackupError as error:
                outcome["error"] = str(error)
            finally:
                connections.close_all()  # this thread's: the default and the backup reader

        worker = threading.Thread(target=backup)
        worker.start()
        wait_for(started.exists, what="pg_dump to start")
        # The swap, committed between the snapshot and pg_dump's reading.
        swap = (
            "BEGIN; ALTER SCHEMA epsilon RENAME TO epsilon_old; CREATE SCHEMA epsilon;\n"
            "SELECT format('CREATE TABLE epsilon.%I (LIKE epsilon_old.%I)', tablename, tablename) "
            "FROM pg_tables WHERE schemaname = 'epsilon_old' \\gexec\n"
            "INSERT INTO epsilon.professionals_professional SELECT * FROM epsilon_old.professionals_professional;\n"
            "COMMIT;\n"
        )
        psql_run(real_psql, swap)
        flag.touch()
        worker.join(timeout=300)
        assert "no coincide con su instantánea" in outcome.get("error", ""), outcome
        assert stored_files(settings.BACKUP_LOCAL_ROOT) == []
    finally:
        flag.touch()
        psql_run(
            real_psql,
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'epsilon_old') THEN "
            "EXECUTE 'DROP SCHEMA epsilon CASCADE'; EXECUTE 'ALTER SCHEMA epsilon_old RENAME TO epsilon'; "
            "END IF; END $$;\n",
        )
        connection.set_schema_to_public()
        clinic.domains.all().delete()
        clinic.delete(force_drop=True)


def psql_run(psql: str, script: str) -> None:
    from apps.backups.engine.pg_clients import libpq_environment

    result = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        input=script.encode(),
        env=libpq_environment(),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
