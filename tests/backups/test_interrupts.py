"""SIGTERM (a deploy, Render ending a job) stops a backup command cleanly, as a
real child process: the backup in progress is failed, nothing is stored, and
no other clinic is started."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.tenants.models import Clinic, ScheduledBackupClaim
from tests.backups.conftest import stored_files
from tests.support.processes import subprocess_env

STALLING_PG_DUMP = """#!{python}
# Answers --version as the real pg_dump, then writes part of a dump and stalls.
import subprocess, sys, time
if sys.argv[1:] == ["--version"]:
    sys.exit(subprocess.run(["{real}", "--version"]).returncode)
sys.stdout.buffer.write(b"-- part of a dump\\n" * 4000)
sys.stdout.flush()
time.sleep(120)
"""


def stalling_pg_dump(folder: Path, real_pg_dump: str) -> Path:
    folder.mkdir(parents=True)
    script = folder / "pg_dump"
    script.write_text(STALLING_PG_DUMP.format(python=sys.executable, real=real_pg_dump))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def running_commands_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:
            continue  # the process ended while we looked
    return pids


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def terminated_mid_backup(arguments: list[str], tmp_path: Path, real_pg_dump: str) -> tuple[int, str, Path]:
    """Run a command, SIGTERM it while its first backup is being written; (exit code, stderr, fake pg_dump)."""
    script = stalling_pg_dump(tmp_path / "bin", real_pg_dump)
    env = subprocess_env(tmp_path) | {"BACKUP_PG_BIN_DIR": str(script.parent)}
    process = subprocess.Popen(
        [sys.executable, "manage.py", *arguments],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    root = settings.BACKUP_LOCAL_ROOT
    wait_for(lambda: any(".tmp-" in path.name for path in stored_files(root)) or process.poll() is not None)
    assert process.poll() is None, process.communicate()
    os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=30)  # not the 120 s pg_dump would stall
    return process.returncode, err, script


def test_sigterm_fails_the_backup_in_progress_and_starts_no_other(committed, tmp_path, real_pg_dump):
    returncode, err, script = terminated_mid_backup(["backup_clinics", "alfa", "beta"], tmp_path, real_pg_dump)
    root = settings.BACKUP_LOCAL_ROOT

    assert returncode == 1
    assert "Interrumpido (SIGTERM)" in err
    with schema_context("alfa"):
        record = BackupRecord.objects.get()
    assert record.status == "failed" and record.error == "Interrumpido: el proceso recibió SIGTERM."
    with schema_context("beta"):
        assert not BackupRecord.objects.exists()
    assert stored_files(root) == []  # not even the temporary object
    assert running_commands_mentioning(str(script)) == []


def test_sigterm_of_the_scheduler_gives_the_slot_back_without_back_off(committed, tmp_path, real_pg_dump):
    alfa = committed["alfa"].clinic
    Clinic.objects.filter(pk=alfa.pk).update(backup_schedule="daily")
    try:
        now = ["--now", "2025-11-25T03:00:00+00:00"]
        returncode, err, _ = terminated_mid_backup(["run_scheduled_backups", *now], tmp_path, real_pg_dump)

        assert returncode == 1 and "Interrumpido (SIGTERM)" in err
        alfa.refresh_from_db()
        assert alfa.backup_failures == 0 and alfa.backup_retry_at is None
        assert not ScheduledBackupClaim.objects.filter(clinic=alfa).exists()  # the next run takes the slot
        with schema_context("alfa"):
            assert BackupRecord.objects.get().error == "Interrumpido: el proceso recibió SIGTERM."
        assert stored_files(settings.BACKUP_LOCAL_ROOT) == []
    finally:
        Clinic.objects.filter(pk=alfa.pk).update(backup_schedule="disabled", backup_failures=0, backup_retry_at=None)
        ScheduledBackupClaim.objects.all().delete()
