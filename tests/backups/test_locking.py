"""One writer per clinic (apps/backups/locking.py), with real processes: a backup
or a restore running in another process holds the clinic; restores, drills and
recoveries are refused at once (API 409), backups share; the scheduler skips a
held clinic without back-off. And the lock holds behind a real PgBouncer in
transaction mode (Neon's pooled endpoint), and dies with its holder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from apps.backups.engine.pg_clients import find_client, libpq_params, server_major
from apps.backups.errors import ClinicBusyError
from apps.backups.locking import clinic_busy, clinic_lock
from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.restore.recovery import clinic_recover_from_storage
from apps.backups.services import backup_create
from apps.tenants.models import Clinic, ScheduledBackupClaim
from tests.backups.conftest import stored_files, write_script
from tests.backups.restore.test_crash_safety import wait_for
from tests.support.database import table_hashes
from tests.support.pgbouncer import pgbouncer_running
from tests.support.processes import subprocess_env

HOLDER = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from apps.backups.locking import clinic_lock
database, schema, operation, mode = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with clinic_lock(schema_name=schema, operation=operation, shared=mode == "shared", database=database):
    print("held", flush=True)
    sys.stdin.read()
"""


def lock_holder(tmp_path: Path, database: dict | None, schema: str, operation: str, mode: str) -> subprocess.Popen:
    """A child process holding the clinic's lock until its stdin closes (or it is killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, json.dumps(database), schema, operation, mode],
        cwd=django_settings.BASE_DIR,
        env=subprocess_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held", process.communicate()
    return process


def waiting_client(folder: Path, program: str, flag: Path, real: str) -> Path:
    """``program`` (pg_dump, psql) that waits for ``flag`` before running the real one."""
    return write_script(
        folder,
        program,
        f'if [ "$1" = --version ]; then exec {real} --version; fi\n'
        f'while [ ! -e {flag} ]; do sleep 0.05; done\nexec {real} "$@"\n',
    )


def manage(tmp_path: Path, *arguments: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *arguments],
        cwd=django_settings.BASE_DIR,
        env=subprocess_env(tmp_path) | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_lock_holds_behind_a_transaction_mode_pgbouncer_and_dies_with_its_holder(committed, tmp_path):
    database = django_settings.DATABASES["default"]
    with pgbouncer_running(
        server_host=database["HOST"] or "127.0.0.1",
        server_port=int(database["PORT"]),
        user=database["USER"],
        pool_mode="transaction",
        pool_size=2,
    ) as bouncer:
        pooled = {
            "NAME": database["NAME"],
            "HOST": bouncer.host,
            "PORT": bouncer.port,
            "USER": database["USER"],
            "PASSWORD": "",
        }
        holder = lock_holder(tmp_path, pooled, "alfa", "restore", "exclusive")
        try:
            for _ in range(15):
                # Other clients' transactions go through the pooler's other server
                # connection, the one a session-level lock would have been left on.
                with psycopg.connect(**libpq_params(pooled), autocommit=True) as other:
                    for _ in range(3):
                        other.execute("SELECT pg_advisory_unlock_all()")
                with pytest.raises(ClinicBusyError, match="una restauración en curso"):
                    with clinic_lock(schema_name="alfa", operation="backup", shared=True, database=pooled):
                        pass
                with pytest.raises(ClinicBusyError):
                    with clinic_lock(schema_name="alfa", operation="restore", database=pooled):
                        pass
            with clinic_lock(schema_name="beta", operation="restore", database=pooled):
                pass  # another clinic is free
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)

            def free() -> bool:
                try:
                    with clinic_lock(schema_name="alfa", operation="restore", database=pooled):
                        return True
                except ClinicBusyError:
                    return False

            wait_for(free, what="the killed holder's lock to be released")
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
            holder.stdout.close()
            holder.stderr.close()
            holder.stdin.close()


def test_a_backup_in_another_process_refuses_restores_drills_and_recovery_but_not_backups(
    committed, tmp_path, real_pg_dump
):
    alfa = committed["alfa"]
    earlier = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = alfa.admin_client()
    flag = tmp_path / "go"
    folder = waiting_client(tmp_path / "bin", "pg_dump", flag, real_pg_dump).parent
    backup = manage(tmp_path, "backup_clinics", "alfa", env={"BACKUP_PG_BIN_DIR": str(folder)})
    try:
        wait_for(lambda: clinic_busy("alfa") == "backup" or backup.poll() is not None, what="the backup's lock")
        assert backup.poll() is None, backup.communicate()
        before = table_hashes("alfa")

        response = client.post("/api/backups/restore/", {"backup_id": earlier.pk}, format="json")
        assert response.status_code == 409
        assert response.json() == {
            "error": "La clínica alfa está ocupada: hay un backup en curso. "
            "No se hizo nada; inténtalo de nuevo cuando termine."
        }
        with pytest.raises(CommandError, match="ocupada: hay un backup en curso"):
            call_command("restore_backup", str(earlier.pk), "--clinic", "alfa")
        with pytest.raises(CommandError, match="no superaron"):
            call_command("restore_drill", "alfa")
        with pytest.raises(ClinicBusyError):
            clinic_recover_from_storage(schema_name="alfa")
        # Backups only read: they run together.
        beside = backup_create(clinic=alfa.clinic, backup_type="manual")
        assert beside.status == "succeeded"
        assert table_hashes("alfa") == before
        flag.touch()
        _, err = backup.communicate(timeout=120)
        assert backup.returncode == 0, err
    finally:
        flag.touch()
        if backup.poll() is None:
            backup.kill()
            backup.wait()
    with schema_context("alfa"):
        assert sorted(BackupRecord.objects.values_list("status", flat=True)) == ["succeeded"] * 3
        assert not BackupRestore.objects.exists()  # refusals are not restores


def test_a_restore_in_another_process_refuses_backups_and_the_scheduler_skips_without_back_off(
    committed, tmp_path, capsys
):
    from django.db import connection

    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = alfa.admin_client()
    real_psql = find_client("psql", min_major=server_major(connection)).path
    flag = tmp_path / "go"
    folder = waiting_client(tmp_path / "bin", "psql", flag, real_psql).parent
    restore = manage(
        tmp_path, "restore_backup", str(record.pk), "--clinic", "alfa", env={"BACKUP_PG_BIN_DIR": str(folder)}
    )
    Clinic.objects.filter(pk=alfa.clinic.pk).update(backup_schedule="daily")
    try:
        wait_for(lambda: clinic_busy("alfa") == "restore" or restore.poll() is not None, what="the restore's lock")
        assert restore.poll() is None, restore.communicate()
        objects_before = stored_files(django_settings.BACKUP_LOCAL_ROOT)

        with pytest.raises(ClinicBusyError, match="ocupada: hay una restauración en curso"):
            backup_create(clinic=alfa.clinic, backup_type="manual")
        response = client.post("/api/backups/create/")
        assert response.status_code == 409 and "restauración en curso" in response.json()["error"]
        response = client.post("/api/backups/restore/", {"backup_id": record.pk}, format="json")
        assert response.status_code == 409 and "restauración en curso" in response.json()["error"]
        with schema_context("alfa"):
            assert list(BackupRecord.objects.values_list("pk", flat=True)) == [record.pk]  # no record for refusals
        assert stored_files(django_settings.BACKUP_LOCAL_ROOT) == objects_before

        call_command("run_scheduled_backups", "--now", "2025-11-25T03:00:00+00:00")
        assert "Omitida: La clínica alfa está ocupada" in capsys.readouterr().out
        refreshed = Clinic.objects.get(pk=alfa.clinic.pk)
        assert (refreshed.backup_failures, refreshed.backup_retry_at) == (0, None)  # no back-off
        assert not ScheduledBackupClaim.objects.filter(clinic=alfa.clinic).exists()  # the next run takes the slot

        flag.touch()
        _, err = restore.communicate(timeout=300)
        assert restore.returncode == 0, err
        call_command("run_scheduled_backups", "--now", "2025-11-25T03:01:00+00:00")
        with schema_context("alfa"):
            assert BackupRecord.objects.filter(backup_type="automatic", status="succeeded").count() == 1
    finally:
        flag.touch()
        if restore.poll() is None:
            restore.kill()
            restore.wait()
        Clinic.objects.filter(pk=alfa.clinic.pk).update(
            backup_schedule="disabled", backup_failures=0, backup_retry_at=None, last_backup_at=None
        )
        ScheduledBackupClaim.objects.all().delete()


def test_a_history_rebuild_waits_for_no_restore_but_runs_beside_a_backup(committed, tmp_path):
    """rebuild_backup_history writes the clinic's records: during a restore's swap they
    would be set aside with the old schema, so a restore (or drill, recovery) refuses it."""
    alfa = committed["alfa"]
    backup_create(clinic=alfa.clinic, backup_type="manual")
    with schema_context("alfa"):
        BackupRecord.objects.all().delete()  # the history to rebuild from the manifest
    restore = lock_holder(tmp_path, None, "alfa", "restore", "exclusive")
    try:
        with pytest.raises(CommandError, match="ocupada: hay una restauración en curso"):
            call_command("rebuild_backup_history", "alfa")
        with schema_context("alfa"):
            assert not BackupRecord.objects.exists()
    finally:
        restore.stdin.close()
        restore.wait(timeout=60)
    backup = lock_holder(tmp_path, None, "alfa", "backup", "shared")
    try:
        call_command("rebuild_backup_history", "alfa")
        with schema_context("alfa"):
            assert BackupRecord.objects.filter(status="succeeded").count() == 1
    finally:
        backup.stdin.close()
        backup.wait(timeout=60)
