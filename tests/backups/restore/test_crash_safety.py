"""A restore whose feeder dies, or whose stream is cut, commits nothing.

psql reading a script from a pipe ends it at end of input; with
``--single-transaction`` it then commits whatever it had. These tests kill the
real ``restore_backup`` process (SIGKILL and SIGTERM) and cut the stream at many
points of the script — in the DDL, inside COPY blocks, mid-row, after the whole
dump but before our closing statements — and find the clinic unchanged every
time, with no parked schema left.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.engine.pg_clients import find_client, libpq_params, server_major
from apps.backups.engine.psql import APPLICATION_NAME as PSQL_APPLICATION_NAME
from apps.backups.errors import RestoreError
from apps.backups.models import BackupRestore
from apps.backups.restore.swap import INCOMING_MARK, backup_restore, restore_leftover_schemas_list
from tests.backups.conftest import pg_client_wrap
from tests.backups.restore.test_swap import schemas
from tests.support.database import table_hashes
from tests.support.processes import subprocess_env

# BEGIN;\n + ALTER SCHEMA "alfa" RENAME TO "alfa_park_<14 digits>_<4 hex>";\n (psql_script + incoming_load_sql)
HEAD_LENGTH = len('BEGIN;\nALTER SCHEMA "alfa" RENAME TO "";\n') + len("alfa_park_20250101000000_abcd")


def wait_for(condition, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def restore_backends() -> int:
    """Live server sessions of restores: psql's and the clinic lock's."""
    with psycopg.connect(**libpq_params(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s OR application_name LIKE %s",
            [PSQL_APPLICATION_NAME, "psicoadmin-lock %"],
        ).fetchone()
        return row[0]


def kill_points(plain: bytes) -> list[tuple[str, int]]:
    """Offsets into the script psql is fed: inside COPY blocks (middle of their
    rows, mid-row), in the DDL before and after the data, the end of the dump."""
    points = [("antes del volcado", 3), ("en el DDL inicial", HEAD_LENGTH + 2000)]
    blocks = [
        (m.group(1).decode(), m.end(), plain.index(b"\n\\.\n", m.end() - 1))
        for m in re.finditer(rb"^COPY \S+\.(\S+) .*FROM stdin;\n", plain, re.M)
    ]
    big = sorted((b for b in blocks if b[2] - b[1] > 2000), key=lambda b: b[2] - b[1], reverse=True)
    assert len(big) >= 3, "the test clinic needs COPY blocks with rows"
    for table, start, end in big[:4]:
        middle = (start + end) // 2
        points.append((f"en mitad del COPY de {table}", HEAD_LENGTH + middle))
        row_start = plain.rindex(b"\n", start, middle) + 1
        points.append((f"a mitad de una fila de {table}", HEAD_LENGTH + row_start + 5))
        points.append((f"justo tras una fila de {table}", HEAD_LENGTH + row_start))
    last_copy_end = max(end for _, _, end in blocks)
    points.append(("tras el último COPY", HEAD_LENGTH + last_copy_end + 4))
    points.append(("a 10 bytes del final del volcado", HEAD_LENGTH + len(plain) - 10))
    points.append(("al final del volcado, antes de nuestro cierre", HEAD_LENGTH + len(plain)))
    return points


def real_psql() -> str:
    return find_client("psql", min_major=server_major(connection)).path


def feeder_killing_psql(real: str) -> str:
    """A psql wrapper's body: psql gets exactly the first ``$KILL_AT`` bytes of its
    script, then the feeder (the wrapper's parent) gets ``$KILL_SIGNAL`` (KILL by
    default), and psql's input ends once the feeder is gone (reaped)."""
    return f"""
{{ head -c "$KILL_AT"; kill -"${{KILL_SIGNAL:-KILL}}" "$PPID"
   n=0; while kill -0 "$PPID" 2>/dev/null && [ $n -lt 1200 ]; do sleep 0.05; n=$((n + 1)); done
}} | {real} "$@"
"""


def commit_offset(plain: bytes) -> int:
    """Where our ``COMMIT`` starts in psql's script: after the dump and our renames."""
    closing = HEAD_LENGTH + len(plain) + len('\nALTER SCHEMA "alfa" RENAME TO "alfa_in_20250101000000_abcd";\n')
    return closing + len('ALTER SCHEMA "alfa_park_20250101000000_abcd" RENAME TO "alfa";\n') + len("\n")


def closing_points(plain: bytes) -> list[tuple[str, int]]:
    """Offsets into our closing lines, after the whole dump: between the renames,
    before ``COMMIT``, inside it, and ``COMMIT`` without its semicolon (psql runs
    an unfinished last statement at end of input)."""
    commit = commit_offset(plain)
    between_renames = HEAD_LENGTH + len(plain) + len('\nALTER SCHEMA "alfa" RENAME TO "alfa_in_20250101000000_abcd";\n')
    return [
        ("entre nuestros cierres", between_renames),
        ("antes de COMMIT", commit),
        ("a mitad de COMMIT", commit + 4),
        ("COMMIT sin punto y coma", commit + len("COMMIT")),
    ]


def test_killing_the_feeder_anywhere_commits_nothing(backed_up_and_changed, settings, tmp_path):
    record, plain, before, schemas_before = backed_up_and_changed
    # psql gets exactly the first KILL_AT bytes of its script, then the feeder (the
    # restore_backup process, psql's parent) gets a real signal, and psql's input ends
    # once the feeder is dead: from psql's side, a feeder killed after writing
    # KILL_AT bytes. (Passing on what the feeder had written ahead into the pipe
    # would move the cut by up to a pipe's buffer, past the points aimed at.)
    pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql(), feeder_killing_psql(real_psql()))
    commit = commit_offset(plain)
    points = kill_points(plain) + closing_points(plain) + [("tras COMMIT, antes de la marca", commit + 8)]
    signals = ["KILL", "TERM"]
    for index, (where, offset) in enumerate(points):
        kill_signal = signals[index % 2]
        env = subprocess_env(tmp_path) | {
            "BACKUP_PG_BIN_DIR": settings.BACKUP_PG_BIN_DIR,
            "KILL_AT": str(offset),
            "KILL_SIGNAL": kill_signal,
        }
        process = subprocess.run(
            [sys.executable, "manage.py", "restore_backup", str(record.pk), "--clinic", "alfa"],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert process.returncode == -getattr(signal, f"SIG{kill_signal}"), (where, process.stderr)
        wait_for(lambda: restore_backends() == 0, what="the killed restore's sessions to end")
        # Unchanged, every time; nothing the dead feeder sent is committed.
        assert table_hashes("alfa") == before, where
        new = schemas() - schemas_before
        if offset < commit + len("COMMIT"):
            assert new == set(), (where, new)  # no COMMIT reached psql: no parked nor incoming schema
        elif new:
            # Only a dump wholly sent and checksum-verified can reach COMMIT (psql runs a
            # last "COMMIT" even without its ";"): committed, it lands beside the clinic
            # as an incoming schema, which cleanup finds. (Often psql dies first, of
            # SIGPIPE, writing its output to the dead feeder: then nothing is committed.)
            assert len(new) == 1 and INCOMING_MARK in next(iter(new)), (where, new)
            interrupted = {item.name for item in restore_leftover_schemas_list() if item.interrupted}
            assert new <= interrupted
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA "{next(iter(new))}" CASCADE')
    with schema_context("alfa"):
        assert not BackupRestore.objects.exists()  # the feeder died before it could record anything
    assert len(points) >= 20


def test_a_stream_cut_anywhere_commits_nothing_and_is_recorded(backed_up_and_changed, settings, tmp_path, monkeypatch):
    record, plain, before, schemas_before = backed_up_and_changed
    # The feeder lives, but psql's input stops after CUT_AT bytes (a broken pipe, a dying helper).
    pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql(), f'head -c "$CUT_AT" | {real_psql()} "$@"\n')
    # Inside our closing statements too. At "COMMIT" without its ";" psql runs it at
    # end of input: the load it commits is the whole verified dump, beside the
    # clinic, and the restore, seeing no confirmation, drops it.
    points = kill_points(plain) + closing_points(plain)
    for where, offset in points:
        monkeypatch.setenv("CUT_AT", str(offset))
        with pytest.raises(RestoreError) as failure:
            backup_restore(clinic=committed_alfa(), record=record)
        assert "no se cambió nada" in str(failure.value), where
        assert table_hashes("alfa") == before, where
        assert schemas() == schemas_before, where
    with schema_context("alfa"):
        failed = list(BackupRestore.objects.values_list("status", flat=True))
    assert failed == ["failed"] * len(points)


def committed_alfa():
    from apps.tenants.models import Clinic

    return Clinic.objects.get(schema_name="alfa")


def test_loads_started_in_the_same_second_never_share_a_schema_name():
    from django.utils import timezone

    from apps.backups.restore.swap import _LEFTOVER_RE, INCOMING_MARK, PARKING_MARK, side_schema_name

    when = timezone.now()
    longest = "c" * 63
    for schema in ("alfa", longest):
        for mark in (INCOMING_MARK, PARKING_MARK, "_drill_"):
            names = {side_schema_name(schema, mark, when, unique=True) for _ in range(40)}
            assert len(names) > 30  # 4 random hex digits: a clash is rare, and a clash fails CREATE/RENAME
            assert all(len(name) <= 63 and _LEFTOVER_RE.match(name) for name in names)
