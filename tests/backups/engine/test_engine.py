"""The backup engine against the real PostgreSQL and the real pg_dump/psql."""

import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyrage
import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.engine.pipeline import store_stream
from apps.backups.engine.snapshot import APPLICATION_NAME, schema_snapshot
from apps.backups.errors import BackupError
from apps.backups.models import BackupRecord
from apps.backups.services import backup_create, backup_open_plain
from apps.backups.storage.local import LocalBackupStorage
from apps.tenants.models import Clinic
from apps.tenants.services import clinic_create
from tests.backups.conftest import sha256_of, stored_files, write_script
from tests.support.database import psql_load, scratch_database, table_hashes


def plain_dump(record: BackupRecord) -> bytes:
    with backup_open_plain(record=record) as chunks:
        return b"".join(chunks)


@pytest.mark.parametrize("sql_style", ["copy", "inserts"])
def test_sql_backup_restored_into_scratch_database_reproduces_every_table(committed, settings, sql_style):
    settings.BACKUP_SQL_STYLE = sql_style
    record = backup_create(clinic=committed["alfa"].clinic, backup_type="manual")

    assert record.status == "succeeded" and record.format == "sql" and record.sql_style == sql_style
    dump = plain_dump(record)
    assert (b"COPY alfa." in dump) == (sql_style == "copy")
    assert (b"INSERT INTO alfa." in dump) == (sql_style == "inserts")
    with scratch_database() as scratch:
        psql_load(dump, scratch)
        restored = table_hashes("alfa", dbname=scratch)
    original = table_hashes("alfa")
    assert restored == original
    assert int(original["appointments_appointment"].split(":")[0]) > 50


def test_manifest_describes_the_backup_and_matches_the_stored_object(committed, settings):
    clinic = committed["alfa"].clinic
    record = backup_create(clinic=clinic, backup_type="manual")
    root = settings.BACKUP_LOCAL_ROOT
    manifest = json.loads((root / record.manifest_path).read_text())
    stored_bytes = (root / record.file_path).read_bytes()

    assert record.file_path == f"alfa/{record.file_name}.zst"
    assert record.manifest_path == f"alfa/{record.file_name}.manifest.json"
    assert manifest["clinic"]["schema_name"] == "alfa" and manifest["clinic"]["name"] == "Clínica Alfa Ñandú"
    assert manifest["format"] == "sql" and manifest["sql_style"] == "copy"
    assert manifest["stored"]["sha256"] == sha256_of(stored_bytes) == record.checksum_sha256
    assert manifest["stored"]["size"] == len(stored_bytes) == record.stored_size
    assert manifest["plain"]["sha256"] == sha256_of(plain_dump(record)) == record.plain_sha256
    assert manifest["plain"]["size"] == record.file_size
    assert manifest["stored"]["compression"] == "zstd" and manifest["stored"]["encryption"] is None
    assert manifest["pg_dump_version"] == record.pg_dump_version
    assert manifest["server_version"] == record.server_version
    assert ["clinical_history", "0001_initial"] in manifest["migrations"]
    actual_counts = {table: int(value.split(":")[0]) for table, value in table_hashes("alfa").items()}
    assert {t: c for t, c in manifest["row_counts"].items() if not t.startswith("backups_")} == actual_counts
    assert record.duration is not None and record.finished_at is not None


def test_row_counts_are_those_of_the_snapshot_though_read_while_the_dump_runs(committed):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM alfa.auth_group")
        (before,) = cursor.fetchone()
        try:
            with schema_snapshot("alfa") as snapshot:
                cursor.execute("INSERT INTO alfa.auth_group (name) VALUES ('creado durante el backup')")
            assert snapshot.row_counts["auth_group"] == before
            assert ["clinical_history", "0001_initial"] in snapshot.migrations
        finally:
            cursor.execute("DELETE FROM alfa.auth_group WHERE name = 'creado durante el backup'")


def test_json_fallback_without_pg_dump_succeeds_and_loads_back(committed, settings, tmp_path):
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "no-postgres-here")
    record = backup_create(clinic=committed["alfa"].clinic, backup_type="automatic")

    assert record.status == "succeeded" and record.format == "json"
    assert record.file_name.startswith("auto-json-alfa-") and record.file_name.endswith(".json")
    assert "no existe" in record.fallback_reason
    data = plain_dump(record)
    objects = json.loads(data)
    assert {"model", "pk", "fields"} <= set(objects[0])

    fixture = tmp_path / "alfa.json"
    fixture.write_bytes(data)
    scratch = clinic_create(schema_name="scratch_json", name="Scratch", domain="scratch-json.test.localhost")
    try:
        with schema_context("scratch_json"):
            call_command("loaddata", str(fixture), verbosity=0)
        # Every data table, except many-to-many link rows whose own ids loaddata renumbers.
        data_tables = set(table_hashes("alfa")) - {
            "chat_conversation_participants",
            "django_migrations",
            "django_content_type",
            "auth_permission",
            "django_admin_log",
            "django_session",
            "auth_group",
            "auth_group_permissions",
        }
        data_tables = {t for t in data_tables if not t.startswith("users_user_")}
        restored = {t: h for t, h in table_hashes("scratch_json").items() if t in data_tables}
        original = {t: h for t, h in table_hashes("alfa").items() if t in data_tables}
        assert restored == original
        assert "clinical_history_sessionnote" in restored and "payment_system_payment" in restored
        assert participant_pairs("scratch_json") == participant_pairs("alfa")
    finally:
        scratch.domains.all().delete()
        scratch.delete(force_drop=True)


def participant_pairs(schema: str) -> list[tuple[int, int]]:
    with schema_context(schema):
        from apps.chat.models import Conversation

        return sorted(Conversation.participants.through.objects.values_list("conversation_id", "user_id"))


def test_json_fallback_when_pg_dump_is_too_old(committed, settings, tmp_path):
    write_script(tmp_path / "old-bin", "pg_dump", 'echo "pg_dump (PostgreSQL) 9.6.24"\n')
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "old-bin")
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    assert record.format == "json" and record.status == "succeeded"
    assert "9.6" in record.fallback_reason


def test_json_fallback_when_pg_dump_fails_before_writing(committed, fake_pg_dump):
    fake_pg_dump(
        """
echo 'pg_dump: error: connection to server failed: FATAL: too many connections' >&2
exit 1
""",
    )
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    assert record.format == "json" and record.status == "succeeded"
    assert "too many connections" in record.fallback_reason


def assert_failed_and_nothing_stored(clinic: Clinic, root, message: str) -> BackupRecord:
    with schema_context(clinic.schema_name):
        record = BackupRecord.objects.get()
    assert record.status == "failed"
    assert message in record.error
    assert stored_files(root) == []  # no object, no manifest, no temporary file
    return record


def test_pg_dump_killed_mid_stream_leaves_a_failed_record_and_nothing_stored(
    committed, settings, real_pg_dump, fake_pg_dump
):
    fake_pg_dump(
        f"""
{real_pg_dump} "$@" | head -c 20000
kill -KILL $$
""",
    )
    clinic = committed["alfa"].clinic
    with pytest.raises(BackupError, match="señal 9"):
        backup_create(clinic=clinic, backup_type="manual")
    assert_failed_and_nothing_stored(clinic, settings.BACKUP_LOCAL_ROOT, "pg_dump falló")


def test_losing_the_snapshot_connection_fails_the_backup_with_a_clear_message(
    committed, settings, real_pg_dump, fake_pg_dump
):
    psql = Path(real_pg_dump).with_name("psql")
    fake_pg_dump(
        f"""
# With a timeout, pg_terminate_backend waits until the backend has gone (without, it only signals it).
{psql} -X -q -c "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
                 WHERE application_name = '{APPLICATION_NAME}' AND datname = current_database()" >/dev/null
exec {real_pg_dump} "$@"
""",  # noqa: S608 (a test's shell script; every value in it is ours)
    )
    clinic = committed["alfa"].clinic
    with pytest.raises(BackupError, match="No se pudo exportar alfa en JSON"):
        backup_create(clinic=clinic, backup_type="manual")
    record = assert_failed_and_nothing_stored(clinic, settings.BACKUP_LOCAL_ROOT, "snapshot")
    assert "pg_dump falló" in record.fallback_reason  # the first attempt, kept for the operator


def test_losing_the_main_connection_mid_backup_still_records_the_failure(
    committed, settings, real_pg_dump, fake_pg_dump
):
    psql = Path(real_pg_dump).with_name("psql")
    connection.ensure_connection()
    our_pid = connection.connection.info.backend_pid
    fake_pg_dump(
        f"""
{psql} -X -q -c "SELECT pg_terminate_backend({our_pid}, 10000)" >/dev/null
exec {real_pg_dump} "$@"
""",
    )
    clinic = committed["alfa"].clinic
    with pytest.raises(BackupError, match="Error de la base de datos durante el backup"):
        backup_create(clinic=clinic, backup_type="manual")
    assert connection.connection.info.backend_pid != our_pid  # the failure was recorded on a new connection
    assert_failed_and_nothing_stored(clinic, settings.BACKUP_LOCAL_ROOT, "Error de la base de datos")


class InterruptedDump:
    """A dump stream that Ctrl-C interrupts after a few chunks."""

    def __init__(self):
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 3:
            raise KeyboardInterrupt
        return b"INSERT INTO pacientes VALUES (1);\n" * 2000


@pytest.mark.parametrize("encrypted", [True, False])
def test_store_stream_interrupted_by_ctrl_c_leaves_no_file(tmp_path, encrypted):
    # The pipeline alone; Ctrl-C through backup_clinics (record, pg_dump child) is in
    # test_engine_guarantees.py.
    recipients = [pyrage.x25519.Identity.generate().to_public()] if encrypted else []
    with pytest.raises(KeyboardInterrupt):
        store_stream(
            source=InterruptedDump(),
            storage=LocalBackupStorage(root=tmp_path),
            path="alfa/backup-sql-alfa-2025-11-25-140530.sql.zst.age",
            recipients=recipients,
            level=3,
        )
    assert stored_files(tmp_path) == []


def test_a_pg_dump_that_exits_0_without_writing_falls_back_to_json(committed, fake_pg_dump):
    fake_pg_dump("")
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    assert record.format == "json" and record.status == "succeeded"
    assert "volcado está incompleto (escribió nada)" in record.fallback_reason


def test_a_pg_dump_that_exits_0_mid_dump_fails_the_backup(committed, settings, real_pg_dump, fake_pg_dump):
    fake_pg_dump(
        f"""
{real_pg_dump} "$@" | head -c 20000
exit 0
""",
    )
    clinic = committed["alfa"].clinic
    with pytest.raises(BackupError, match="incompleto"):
        backup_create(clinic=clinic, backup_type="manual")
    assert_failed_and_nothing_stored(clinic, settings.BACKUP_LOCAL_ROOT, "escribió 20000 bytes")


def test_storage_refusing_the_write_leaves_a_failed_record(committed, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the bucket folder should be")
    settings.BACKUP_LOCAL_ROOT = blocker / "bucket"
    clinic = committed["alfa"].clinic
    with pytest.raises(BackupError, match="No se puede escribir"):
        backup_create(clinic=clinic, backup_type="manual")
    assert_failed_and_nothing_stored(clinic, settings.BACKUP_LOCAL_ROOT, "No se puede escribir")


def test_stored_object_not_matching_its_checksum_fails_the_backup(committed, settings):
    settings.BACKUP_STORAGE_BACKEND = "tests.support.storages.CorruptingLocalStorage"
    clinic = committed["alfa"].clinic
    with pytest.raises(BackupError, match="no coincide con su checksum"):
        backup_create(clinic=clinic, backup_type="manual")
    assert_failed_and_nothing_stored(clinic, settings.BACKUP_LOCAL_ROOT, "checksum")


def test_encrypted_backup_holds_no_plaintext_and_opens_with_age_and_zstd(committed, settings, age_key):
    record = backup_create(clinic=committed["alfa"].clinic, backup_type="manual")
    stored_path = settings.BACKUP_LOCAL_ROOT / record.file_path
    stored = stored_path.read_bytes()

    assert record.encryption == "age" and record.file_path.endswith(".sql.zst.age")
    assert stored.startswith(b"age-encryption.org/v1\n")
    for plaintext in (b"CREATE TABLE", b"COPY alfa", "Ñandú".encode(), b"admin@alfa.com"):
        assert plaintext not in stored
    decrypted = subprocess.run(
        ["age", "--decrypt", "-i", str(age_key), str(stored_path)], capture_output=True, check=True
    ).stdout
    plain = subprocess.run(["zstd", "-d", "-c"], input=decrypted, capture_output=True, check=True).stdout
    assert sha256_of(plain) == record.plain_sha256
    assert plain == plain_dump(record)


def test_unencrypted_backup_opens_with_zstd(committed, settings):
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    plain = subprocess.run(
        ["zstd", "-d", "-c", str(settings.BACKUP_LOCAL_ROOT / record.file_path)], capture_output=True, check=True
    ).stdout
    assert b"CREATE TABLE beta.clinical_history_sessionnote" in plain
    assert sha256_of(plain) == record.plain_sha256


def test_two_backups_in_the_same_second_get_distinct_names(committed):
    clinic = committed["beta"].clinic
    first = backup_create(clinic=clinic, backup_type="manual")
    second = backup_create(clinic=clinic, backup_type="manual")
    assert first.file_name != second.file_name
    assert first.file_path != second.file_path


def test_backups_started_together_each_keep_their_own_object(committed):
    """Several workers at once on one clinic (a double-clicked button, the API and
    the scheduler): every backup gets its own name, and every one downloads intact."""
    clinic = committed["beta"].clinic
    start = threading.Barrier(4)

    def backup_in_own_connection() -> int:
        try:
            start.wait()
            return backup_create(clinic=clinic, backup_type="manual").pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(lambda _: backup_in_own_connection(), range(4)))

    with schema_context("beta"):
        records = list(BackupRecord.objects.filter(pk__in=ids))
    assert len({record.file_name for record in records}) == len({record.file_path for record in records}) == 4
    for record in records:
        assert record.status == "succeeded"
        assert sha256_of(plain_dump(record)) == record.plain_sha256


def test_a_crashed_backup_is_marked_failed_and_its_leftovers_removed_by_the_next(committed, settings):
    import os
    from datetime import timedelta

    from django.utils import timezone

    clinic = committed["beta"].clinic
    # What a killed worker leaves: a temporary upload and a running record.
    folder = settings.BACKUP_LOCAL_ROOT / "beta"
    folder.mkdir(parents=True)
    leftover = folder / ".tmp-0123abcd-backup-sql-beta-2020-01-01-000000.sql.zst"
    leftover.write_bytes(b"partial")
    a_day_ago = (timezone.now() - timedelta(days=1)).timestamp()
    os.utime(leftover, (a_day_ago, a_day_ago))
    with schema_context("beta"):
        crashed = BackupRecord.objects.create(
            file_name="backup-sql-beta-2020-01-01-000000.sql",
            backup_type="manual",
            created_at=timezone.now() - timedelta(days=1),
        )
        assert crashed.is_stale
    backup_create(clinic=clinic, backup_type="manual")
    with schema_context("beta"):
        crashed.refresh_from_db()
    assert crashed.status == "failed" and "Interrumpido" in crashed.error
    assert not leftover.exists()
    assert not [path for path in stored_files(settings.BACKUP_LOCAL_ROOT) if ".tmp-" in path.name]


def test_a_leftover_that_cannot_be_removed_does_not_stop_the_backup(committed, settings, caplog):
    import os

    # A leftover unlink() cannot remove, even as root: a non-empty folder with a temporary's name.
    leftover = settings.BACKUP_LOCAL_ROOT / "beta" / ".tmp-0123abcd-backup-sql-beta-2020-01-01-000000.sql.zst"
    (leftover / "inside").mkdir(parents=True)
    os.utime(leftover, (0, 0))

    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    assert record.status == "succeeded"
    assert "No se pudieron limpiar backups interrumpidos de beta" in caplog.text


def test_public_schema_is_never_backed_up(committed):
    public = Clinic(schema_name="public", name="PsicoAdmin")
    with pytest.raises(BackupError, match="public"):
        backup_create(clinic=public, backup_type="automatic")
