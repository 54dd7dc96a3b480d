"""What the README promises of a backup, each forced rather than hit by chance:
the dump is the exported snapshot, the password never on a command line, names
unique within a second, crashed backups cleaned after (and only after) the
stale threshold, a failed manifest write, Ctrl-C in a real ``backup_clinics``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.ddl_cache.models import SchemaDdl
from apps.backups.engine.naming import backup_file_name, manifest_path_for, object_path, stored_object_name
from apps.backups.engine.pg_clients import libpq_params
from apps.backups.errors import BackupError
from apps.backups.models import BackupRecord
from apps.backups.services import backup_create, backup_open_plain
from tests.backups.conftest import pg_client_wrap, stored_files, write_script
from tests.backups.test_interrupts import running_commands_mentioning, stalling_pg_dump, wait_for
from tests.support.database import psql_load, scratch_database
from tests.support.processes import subprocess_env

# Long enough for any backup_create started now to begin inside it, on a busy machine too.
WINDOW_SECONDS = 300


def plain_dump(record: BackupRecord) -> bytes:
    with backup_open_plain(record=record) as chunks:
        return b"".join(chunks)


def names_for_the_next_seconds(schema: str, *, sequence: int = 1) -> list[str]:
    """The guide's name of a manual SQL backup for every second of the window starting now."""
    start = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    return [
        backup_file_name(
            backup_type="manual",
            fmt="sql",
            schema_name=schema,
            when=start + timedelta(seconds=second),
            sequence=sequence,
        )
        for second in range(WINDOW_SECONDS)
    ]


# --- the dump is the exported snapshot -------------------------------------------------


def test_rows_committed_after_the_snapshot_are_not_in_the_backup(committed, settings):
    """A session holds a lock that the backup's readers wait for; once one waits (the
    snapshot is exported by then) it commits new rows and lets the backup go on."""
    clinic = committed["beta"].clinic
    with psycopg.connect(**libpq_params(), autocommit=True) as setup:
        setup.execute("INSERT INTO beta.auth_group (name) VALUES ('marcador antes del snapshot')")
    outcome: dict = {}

    def backup_in_own_connection() -> None:
        try:
            outcome["record"] = backup_create(clinic=clinic, backup_type="manual")
        except BaseException as error:
            outcome["error"] = error
        finally:
            connection.close()

    try:
        with psycopg.connect(**libpq_params()) as holder:
            holder.execute("LOCK TABLE beta.auth_group IN ACCESS EXCLUSIVE MODE")
            worker = threading.Thread(target=backup_in_own_connection)
            worker.start()
            with psycopg.connect(**libpq_params(), autocommit=True) as watcher:

                def a_reader_waits() -> bool:
                    row = watcher.execute(
                        "SELECT count(*) FROM pg_locks WHERE relation = 'beta.auth_group'::regclass AND NOT granted"
                    ).fetchone()
                    return row[0] > 0 or not worker.is_alive()

                wait_for(a_reader_waits)
            holder.execute("INSERT INTO beta.auth_group (name) VALUES ('marcador tras el snapshot')")
            holder.execute(
                "INSERT INTO beta.django_content_type (app_label, model) VALUES ('marcador', 'tras_el_snapshot')"
            )
            holder.commit()
        worker.join(timeout=120)
        assert "error" not in outcome, outcome.get("error")
        record = outcome["record"]
        dump = plain_dump(record)
        assert b"marcador antes del snapshot" in dump
        assert b"marcador tras el snapshot" not in dump
        assert b"tras_el_snapshot" not in dump
        manifest = json.loads((settings.BACKUP_LOCAL_ROOT / record.manifest_path).read_bytes())
        with scratch_database() as scratch, psycopg.connect(**libpq_params() | {"dbname": scratch}) as reader:
            psql_load(dump, scratch)
            for table in ("auth_group", "django_content_type"):
                (rows,) = reader.execute(f"SELECT count(*) FROM beta.{table}").fetchone()  # noqa: S608
                assert rows == manifest["row_counts"][table]
    finally:
        with psycopg.connect(**libpq_params(), autocommit=True) as cleanup:
            cleanup.execute("DELETE FROM beta.auth_group WHERE name LIKE 'marcador %'")
            cleanup.execute("DELETE FROM beta.django_content_type WHERE app_label = 'marcador'")


# --- the password only in PGPASSWORD; sslmode honoured ----------------------------------


def database_with_password_and_sslmode(settings) -> str:
    """The configured database with a password and ``sslmode=disable``; the password."""
    database = dict(django_settings.DATABASES["default"])
    # The embedded server trusts local connections: a marker password is sent and ignored.
    password = database.get("PASSWORD") or "clave-marcador-no-en-la-linea"
    settings.DATABASES = django_settings.DATABASES | {
        "default": database | {"PASSWORD": password, "OPTIONS": {**database.get("OPTIONS", {}), "sslmode": "disable"}}
    }
    return password


def recording(seen: Path, real: str) -> str:
    """A client wrapper's body: write down its arguments and libpq variables, then run ``real``."""
    return f"""printf '%s\\n' "$@" > {seen}.args
printf '%s\\n' "$PGPASSWORD" > {seen}.password
printf '%s\\n' "$PGSSLMODE" > {seen}.sslmode
exec {real} "$@"
"""


def assert_password_only_in_environment(seen: Path, password: str) -> None:
    assert password not in Path(f"{seen}.args").read_text()
    assert Path(f"{seen}.password").read_text().strip() == password
    assert Path(f"{seen}.sslmode").read_text().strip() == "disable"


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_pg_dump_gets_the_password_in_its_environment_never_on_its_command_line(
    committed, settings, tmp_path, fake_pg_dump, real_pg_dump
):
    password = database_with_password_and_sslmode(settings)
    seen = tmp_path / "seen"
    fake_pg_dump(recording(seen, real_pg_dump))
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")

    assert record.status == "succeeded" and record.format == "sql"
    assert "--schema=beta" in Path(f"{seen}.args").read_text().splitlines()
    assert_password_only_in_environment(seen, password)


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_psql_gets_the_password_in_its_environment_never_on_its_command_line(
    committed, settings, tmp_path, real_pg_dump
):
    password = database_with_password_and_sslmode(settings)
    beta = committed["beta"]
    record = backup_create(clinic=beta.clinic, backup_type="manual")
    seen = tmp_path / "seen"
    real_psql = str(Path(real_pg_dump).with_name("psql"))
    pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql, recording(seen, real_psql))

    response = beta.admin_client().post("/api/backups/restore/", {"backup_id": record.pk}, format="json")

    assert response.status_code == 202, response.content  # a job, run in the test's process here
    arguments = Path(f"{seen}.args").read_text().splitlines()
    # Our own BEGIN/COMMIT, never --single-transaction (it commits a cut stream: issue 11).
    assert "--single-transaction" not in arguments and "ON_ERROR_STOP=1" in arguments
    assert_password_only_in_environment(seen, password)


# --- two backups in one second; an object without a record -----------------------------


def test_a_name_held_by_another_record_in_the_same_second_gets_the_next_sequence(committed):
    """Every name of the next minutes is taken by a record: the backup must take ``-2``."""
    with schema_context("beta"):
        BackupRecord.objects.bulk_create(
            BackupRecord(file_name=name, backup_type="manual", status="failed", created_at=timezone.now())
            for name in names_for_the_next_seconds("beta")
        )
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")

    assert record.status == "succeeded"
    assert record.file_name.endswith("-2.sql"), record.file_name
    assert record.file_name == backup_file_name(
        backup_type="manual", fmt="sql", schema_name="beta", when=record.created_at, sequence=2
    )
    assert record.file_path == f"beta/{record.file_name}.zst"


def test_an_object_stored_without_a_record_is_never_overwritten(committed, settings):
    """Objects (no records) under every name of the next minutes, e.g. before a history
    rebuild: the backup takes the next free name and leaves them as they were."""
    root = settings.BACKUP_LOCAL_ROOT
    foreign = {}
    for name in names_for_the_next_seconds("beta"):
        path = root / object_path("beta", stored_object_name(name, encrypted=False))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"otro backup " + name.encode())
        foreign[path] = path.read_bytes()

    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")

    assert record.status == "succeeded" and record.file_name.endswith("-2.sql"), record.file_name
    assert {path: path.read_bytes() for path in foreign} == foreign
    assert b"CREATE TABLE beta." in plain_dump(record)


# --- crashed backups: after the stale threshold, and only then ---------------------------


def stored_backup(root: Path, name: str) -> tuple[str, str]:
    path = object_path("beta", stored_object_name(name, encrypted=False))
    manifest = manifest_path_for(name, "beta")
    for each in (path, manifest):
        (root / each).parent.mkdir(parents=True, exist_ok=True)
        (root / each).write_bytes(b"partial")
    return path, manifest


def test_crashed_backups_lose_their_objects_after_the_stale_threshold_and_fresh_ones_are_left_alone(
    committed, settings
):
    settings.BACKUP_STALE_AFTER_MINUTES = 60
    root = settings.BACKUP_LOCAL_ROOT
    now = timezone.now()
    records = {}
    with schema_context("beta"):
        for label, minutes in (("crashed", 61), ("fresh", 59)):
            name = f"backup-sql-beta-2020-01-01-0000{minutes}.sql"
            path, manifest = stored_backup(root, name)
            records[label] = BackupRecord.objects.create(
                file_name=name,
                file_path=path,
                manifest_path=manifest,
                backup_type="manual",
                created_at=now - timedelta(minutes=minutes),
            )
    temporaries = {}
    for label, minutes in (("crashed", 61), ("fresh", 59)):
        temporary = root / "beta" / f".tmp-{minutes:08x}-backup-sql-beta-2020-01-01-0000{minutes}.sql.zst"
        temporary.write_bytes(b"partial")
        moment = (now - timedelta(minutes=minutes)).timestamp()
        os.utime(temporary, (moment, moment))
        temporaries[label] = temporary

    backup_create(clinic=committed["beta"].clinic, backup_type="manual")

    with schema_context("beta"):
        crashed = BackupRecord.objects.get(pk=records["crashed"].pk)
        fresh = BackupRecord.objects.get(pk=records["fresh"].pk)
    assert crashed.status == "failed" and "Interrumpido" in crashed.error
    assert not (root / crashed.file_path).exists() and not (root / crashed.manifest_path).exists()
    assert not temporaries["crashed"].exists()
    # Maybe still being written by a live worker: untouched.
    assert fresh.status == "running" and fresh.error == ""
    assert (root / fresh.file_path).read_bytes() == b"partial" == (root / fresh.manifest_path).read_bytes()
    assert temporaries["fresh"].read_bytes() == b"partial"


# --- a manifest that cannot be stored ----------------------------------------------------


def test_a_manifest_write_failure_leaves_a_failed_record_and_no_object(committed, settings):
    """The storage refuses every manifest name of the next minutes (a folder holds each):
    the backup object was already stored, and must not stay."""
    root = settings.BACKUP_LOCAL_ROOT
    blockers = set()
    for name in names_for_the_next_seconds("beta"):
        inside = root / manifest_path_for(name, "beta") / "ocupado"
        inside.parent.mkdir(parents=True, exist_ok=True)
        inside.write_bytes(b"")
        blockers.add(inside)

    with pytest.raises(BackupError, match="escribir"):
        backup_create(clinic=committed["beta"].clinic, backup_type="manual")

    with schema_context("beta"):
        record = BackupRecord.objects.get()
    assert record.status == "failed" and "escribir" in record.error
    assert record.file_name.endswith(".sql") and not (root / record.file_path).exists()
    assert set(stored_files(root)) == blockers  # no object, no temporary


# --- Ctrl-C in a real backup command -----------------------------------------------------


def backup_clinics_started(env: dict[str, str]) -> subprocess.Popen:
    """``backup_clinics beta`` in a session of its own (its process group is the "terminal")."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "backup_clinics", "beta"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def ctrl_c(process: subprocess.Popen, target: str) -> None:
    """``terminal``: SIGINT to the whole process group, as a shell's Ctrl-C; ``parent only``: the command alone."""
    if target == "terminal":
        os.killpg(process.pid, signal.SIGINT)
    else:
        os.kill(process.pid, signal.SIGINT)


def killed_if_running(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("target", ["terminal", "parent only"])
def test_ctrl_c_during_backup_clinics_fails_its_record_ends_pg_dump_and_stores_nothing(
    committed, tmp_path, real_pg_dump, target
):
    """``terminal``: SIGINT to the whole process group, as Ctrl-C in a shell sends it;
    ``parent only``: only the command gets it, so our code must end its pg_dump child."""
    script = stalling_pg_dump(tmp_path / "bin", real_pg_dump)
    env = subprocess_env(tmp_path) | {"BACKUP_PG_BIN_DIR": str(script.parent)}
    process = backup_clinics_started(env)
    root = django_settings.BACKUP_LOCAL_ROOT
    try:
        wait_for(lambda: any(".tmp-" in path.name for path in stored_files(root)) or process.poll() is not None)
        assert process.poll() is None, process.communicate()
        assert running_commands_mentioning(str(script))  # pg_dump is running
        ctrl_c(process, target)
        process.communicate(timeout=60)  # not the 120 s the stalled pg_dump would take
    finally:
        killed_if_running(process)

    assert process.returncode != 0
    with schema_context("beta"):
        record = BackupRecord.objects.get()
    assert record.status == "failed" and record.error and record.finished_at is not None
    assert stored_files(root) == []
    deadline = time.monotonic() + 10
    while running_commands_mentioning(str(script)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_commands_mentioning(str(script)) == []


# pg_dump --schema-only (the DDL cache's fill) that never ends, run by a wrapper script
# as a child of its own, as wrappers that do not ``exec`` do: ending only the wrapper
# would leave it running. Its command line names the wrapper, so it is counted as ours.
STALLED_SCHEMA_DUMP = """#!{python}
import time
time.sleep(120)
"""


def wrapped_clients_with_a_stalled_ddl_fill(folder: Path, real_pg_dump: str) -> Path:
    """pg_dump, psql and pg_restore in ``folder`` (all needed for the cached-DDL dump);
    ``pg_dump --schema-only`` writes ``folder/ddl-fill-started`` and stalls."""
    real = Path(real_pg_dump)
    folder.mkdir(parents=True)
    for program in ("psql", "pg_restore"):
        (folder / program).symlink_to(real.with_name(program))
    stall = folder.parent / "stalled_schema_dump.py"
    stall.write_text(STALLED_SCHEMA_DUMP.format(python=sys.executable))
    write_script(
        folder,
        "pg_dump",
        f"""if [ "$1" = --version ]; then exec {real} --version; fi
for argument in "$@"; do
  if [ "$argument" = --schema-only ]; then
    touch {folder}/ddl-fill-started
    {sys.executable} {stall} "$0" "$@"
    exit $?
  fi
done
exec {real} "$@"
""",
    )
    return folder


@pytest.mark.parametrize("target", ["terminal", "parent only"])
def test_ctrl_c_while_the_ddl_cache_is_filled_fails_the_record_and_ends_every_client(
    committed, tmp_path, real_pg_dump, target
):
    """The DDL cache has nothing for the clinic's structure, so the backup first runs
    ``pg_dump --schema-only`` (then pg_restore): Ctrl-C then must end it, and all it started."""
    SchemaDdl.objects.all().delete()
    folder = wrapped_clients_with_a_stalled_ddl_fill(tmp_path / "bin", real_pg_dump)
    env = subprocess_env(tmp_path) | {"BACKUP_PG_BIN_DIR": str(folder)}
    process = backup_clinics_started(env)
    try:
        wait_for(lambda: (folder / "ddl-fill-started").exists() or process.poll() is not None)
        assert process.poll() is None, process.communicate()
        wait_for(lambda: len(running_commands_mentioning(str(folder))) >= 2)  # the wrapper and its child
        ctrl_c(process, target)
        started = time.monotonic()
        _, err = process.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        killed_if_running(process)

    deadline = time.monotonic() + 10
    while running_commands_mentioning(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = running_commands_mentioning(str(folder))  # pg_dump, pg_restore or a child of theirs
    for pid in left:
        os.kill(pid, signal.SIGKILL)

    assert process.returncode != 0, err
    assert took < 10, f"{took:.1f} s after Ctrl-C"
    assert left == []
    with schema_context("beta"):
        record = BackupRecord.objects.get()
    assert record.status == "failed" and record.finished_at is not None
    assert record.error == "Interrumpido: el proceso recibió SIGINT.", record.error
    assert "Interrumpido (SIGINT)" in err
    assert stored_files(django_settings.BACKUP_LOCAL_ROOT) == []
    assert not SchemaDdl.objects.exists()


@pytest.mark.parametrize("target", ["terminal", "parent only"])
def test_ctrl_c_while_a_clinic_table_is_locked_by_another_session_ends_the_backup(
    committed, tmp_path, real_pg_dump, target
):
    """Another session holds a clinic table: the snapshot's row count and the dump's
    client both wait for it. Ctrl-C must not wait for that session too."""
    SchemaDdl.objects.all().delete()
    env = subprocess_env(tmp_path) | {"BACKUP_PG_BIN_DIR": str(Path(real_pg_dump).parent)}
    with psycopg.connect(**libpq_params()) as holder, psycopg.connect(**libpq_params(), autocommit=True) as watcher:
        holder.execute("LOCK TABLE beta.auth_group IN ACCESS EXCLUSIVE MODE")
        process = backup_clinics_started(env)
        try:

            def waiting_for_the_lock() -> list[str]:
                return [
                    name
                    for (name,) in watcher.execute(
                        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                        " WHERE l.relation = 'beta.auth_group'::regclass AND NOT l.granted"
                    ).fetchall()
                ]

            wait_for(lambda: len(waiting_for_the_lock()) >= 2 or process.poll() is not None)
            assert process.poll() is None, process.communicate()
            assert "psicoadmin-backup-snapshot" in waiting_for_the_lock()  # the row count
            ctrl_c(process, target)
            started = time.monotonic()
            _, err = process.communicate(timeout=30)  # the lock is still held
            took = time.monotonic() - started
        finally:
            killed_if_running(process)
            holder.rollback()

    assert process.returncode != 0, err
    assert took < 10, f"{took:.1f} s after Ctrl-C"
    assert "Interrumpido (SIGINT)" in err
    with schema_context("beta"):
        record = BackupRecord.objects.get()
    assert record.status == "failed" and record.error == "Interrumpido: el proceso recibió SIGINT."
    assert stored_files(django_settings.BACKUP_LOCAL_ROOT) == []
