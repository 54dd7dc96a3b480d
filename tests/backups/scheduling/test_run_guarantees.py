"""What the README promises of automatic runs beyond the rules: a long backup keeps
its slot by renewing its lease (a second run after the first lease ran out does not
take it), and ``--workers`` threads close their database connections."""

import subprocess
import sys
import time

import psycopg
from django.conf import settings
from django.db import connection

from apps.backups.engine.pg_clients import libpq_params
from apps.backups.scheduling.run import scheduled_backups_run
from apps.tenants.models import ScheduledBackupClaim
from tests.backups.conftest import write_script
from tests.backups.scheduling.test_run import NOW, records, sched, set_clinic  # noqa: F401 (fixture)
from tests.backups.test_interrupts import wait_for
from tests.support.processes import subprocess_env

LEASE_SECONDS = 3


def run_in_process(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduled_backups", "--now", NOW.isoformat()],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_backup_longer_than_its_lease_keeps_its_slot(sched, tmp_path, real_pg_dump):  # noqa: F811
    set_clinic("alfa", backup_schedule="daily")
    # pg_dump takes several leases' time: only renewals keep the slot.
    slow = write_script(
        tmp_path / "bin",
        "pg_dump",
        f'if [ "$1" = --version ]; then exec {real_pg_dump} --version; fi\n'
        f'sleep {LEASE_SECONDS * 3}\nexec {real_pg_dump} "$@"\n',
    )
    env = subprocess_env(tmp_path) | {
        "BACKUP_PG_BIN_DIR": str(slow.parent),
        "BACKUP_SCHEDULE_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    first = run_in_process(env)
    try:
        wait_for(lambda: ScheduledBackupClaim.objects.filter(status="running").exists() or first.poll() is not None)
        claim = ScheduledBackupClaim.objects.get()
        first_lease = claim.lease_until
        # Until the first lease has run out by the database's clock (the one claims use).
        with connection.cursor() as cursor:

            def first_lease_over() -> bool:
                cursor.execute("SELECT now() > %s", [first_lease])
                return cursor.fetchone()[0]

            wait_for(first_lease_over)
        assert first.poll() is None, first.communicate()  # still backing up

        second = run_in_process(env)
        second_out, second_err = second.communicate(timeout=120)
        first_out, first_err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    assert first.returncode == 0, first_err
    assert "📦" in first_out and "Subido exitosamente" in first_out
    assert second.returncode == 0, second_err
    assert "📦" not in second_out  # the slot was still held
    assert [(r.status, r.schedule_slot) for r in records("alfa")] == [("succeeded", "daily:2025-11-25")]
    claim.refresh_from_db()
    assert claim.status == "succeeded" and claim.attempts == 1 and claim.lease_until > first_lease


def our_backends() -> int:
    """Sessions on the test database other than this one's."""
    with psycopg.connect(**libpq_params(), autocommit=True) as watcher:
        (count,) = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return count


def test_workers_close_their_database_connections(sched):  # noqa: F811
    for schema in ("alfa", "beta"):
        set_clinic(schema, backup_schedule="daily")
    connection.ensure_connection()
    before = our_backends()

    outcomes = scheduled_backups_run(now=NOW, workers=3)

    assert sorted(outcome.status for outcome in outcomes) == ["succeeded", "succeeded"]
    deadline = time.monotonic() + 15  # a closed session's backend takes a moment to go
    while our_backends() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert our_backends() == before
