"""Automatic backups through the queue: the cron claims the due slots and
enqueues them; real worker processes back the clinics up. Exactly once per
slot holds with several workers, overlapping cron runs, and a worker killed
with SIGKILL in the middle of a backup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.models import BackupRecord
from apps.backups.services import backup_create
from apps.tenants.models import Clinic, ScheduledBackupClaim
from apps.tenants.services import clinic_clone, clinic_create, clinic_template_dump
from tests.backups.conftest import stored_files
from tests.backups.test_interrupts import running_commands_mentioning, stalling_pg_dump
from tests.support.celery_workers import broker_idle, wait_until, workers_running


def records_of(schema_name: str) -> list[BackupRecord]:
    with schema_context(schema_name):
        return list(BackupRecord.objects.order_by("pk"))


def test_a_worker_killed_mid_backup_neither_loses_the_slot_nor_backs_up_twice(
    schedules_reset, broker, worker_env, tmp_path, real_pg_dump, settings, capsys
):
    Clinic.objects.filter(schema_name="alfa").update(backup_schedule="daily")
    # Short lease and visibility timeout so that the test does not wait hours.
    env = worker_env | {"BACKUP_SCHEDULE_LEASE_SECONDS": "2", "BACKUP_JOB_VISIBILITY_TIMEOUT": "4"}
    stalling = stalling_pg_dump(tmp_path / "stall", real_pg_dump)
    root = settings.BACKUP_LOCAL_ROOT

    call_command("run_scheduled_backups")
    assert "En cola: Clínica Alfa" in capsys.readouterr().out
    claim = ScheduledBackupClaim.objects.get()
    assert claim.worker.startswith("queued:")
    with schema_context("alfa"):
        job = BackupJob.objects.get()
    assert (job.status, job.schedule_slot) == ("queued", claim.slot)

    stalling_env = env | {"BACKUP_PG_BIN_DIR": str(stalling.parent)}
    with workers_running(1, env=stalling_env, folder=tmp_path, prefix="doomed") as (doomed,):
        wait_until(lambda: any(".tmp-" in path.name for path in stored_files(root)))
        assert job_status("alfa", job.pk) == "running"
        doomed.kill9()  # mid-backup: its dump is half written
    for pid in running_commands_mentioning(str(stalling)):
        os.kill(pid, signal.SIGKILL)  # the dead worker's orphaned (fake) pg_dump
    [dead] = records_of("alfa")
    assert dead.status == "running"

    with workers_running(1, env=env, folder=tmp_path, prefix="heir") as (heir,):
        # Nobody enqueues anything: the unacknowledged message comes back by itself.
        wait_until(lambda: job_status("alfa", job.pk) in ("succeeded", "failed"), timeout=180)
        wait_until(lambda: broker_idle(broker))
        call_command("run_scheduled_backups")  # the cron's next minute: nothing left to do
        assert "0 backup(s) en cola" in capsys.readouterr().out
        wait_until(lambda: broker_idle(broker))

    succeeded = [r for r in records_of("alfa") if r.status == "succeeded"]
    assert len(succeeded) == 1, heir.output()[-3000:]
    assert succeeded[0].schedule_slot == claim.slot and succeeded[0].backup_type == "automatic"
    claim.refresh_from_db()
    assert (claim.status, claim.attempts) == ("succeeded", 2)
    with schema_context("alfa"):
        job.refresh_from_db()
    assert (job.status, job.attempts, job.backup_id, job.error) == ("succeeded", 2, succeeded[0].pk, "")
    alfa = Clinic.objects.get(schema_name="alfa")
    assert alfa.last_backup_at is not None and alfa.backup_failures == 0

    # The clinic's next backup cleans up what the dead worker left (once it is stale).
    settings.BACKUP_STALE_AFTER_MINUTES = 0
    backup_create(clinic=alfa, backup_type="manual")
    dead = next(r for r in records_of("alfa") if r.pk == dead.pk)
    assert dead.status == "failed" and "Interrumpido" in dead.error
    leftovers = [path for path in stored_files(root) if ".tmp-" in path.name or dead.file_name in path.name]
    assert leftovers == []


def job_status(schema_name: str, job_id: int) -> str:
    with schema_context(schema_name):
        return BackupJob.objects.get(pk=job_id).status


def test_three_workers_over_fifty_due_clinics_make_exactly_one_backup_per_clinic_per_slot(
    schedules_reset, broker, worker_env, tmp_path
):
    template = clinic_create(schema_name="jobs_template", name="Plantilla", domain="jobs-template.test.localhost")
    template_sql = clinic_template_dump(template=template)
    names = [f"jobs_{number:02d}" for number in range(50)]
    try:
        for name in names:
            clinic_clone(
                template=template,
                template_sql=template_sql,
                schema_name=name,
                name=f"Clínica {name}",
                domain=f"{name}.test.localhost",
            )
        Clinic.objects.filter(schema_name__in=names).update(backup_schedule="daily")

        with workers_running(3, env=worker_env, folder=tmp_path) as workers:
            # Two cron runs at once (a slow run overlapping the next minute, or two cron boxes).
            crons = [
                subprocess.Popen(
                    [sys.executable, "manage.py", "run_scheduled_backups"],
                    cwd=settings.BASE_DIR,
                    env=worker_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            outputs = [cron.communicate(timeout=300) for cron in crons]
            assert [cron.returncode for cron in crons] == [0, 0], outputs
            assert sum(out.count("En cola:") for out, _ in outputs) == 50
            wait_until(
                lambda: ScheduledBackupClaim.objects.filter(status="succeeded").count() == 50, timeout=600, interval=0.5
            )
            wait_until(lambda: broker_idle(broker))
            call_command("run_scheduled_backups")  # again: every slot is done
            wait_until(lambda: broker_idle(broker))
            logs = [worker.output() for worker in workers]

        claims = ScheduledBackupClaim.objects.filter(clinic__schema_name__in=names)
        assert claims.count() == 50 and {claim.status for claim in claims} == {"succeeded"}
        slots = dict(claims.values_list("clinic__schema_name", "slot"))
        for name in names:
            records = records_of(name)
            assert [(r.status, r.backup_type, r.schedule_slot) for r in records] == [
                ("succeeded", "automatic", slots[name])
            ], name
            with schema_context(name):
                assert list(BackupJob.objects.values_list("status", "backup_id")) == [("succeeded", records[0].pk)]
        # The night was shared: more than one worker made backups.
        assert sum(1 for log in logs if "succeeded in" in log) >= 2
    finally:
        for clinic in Clinic.objects.filter(schema_name__in=[*names, "jobs_template"]):
            clinic.delete(force_drop=True)


def test_celery_beat_can_replace_the_cron(schedules_reset, broker):
    import redis

    from apps.backups.jobs import tasks
    from config.celery import app

    entry = app.conf.beat_schedule["run-scheduled-backups"]
    assert (entry["task"], entry["schedule"]) == ("backups.scheduled_backups_enqueue", 60.0)
    Clinic.objects.filter(schema_name="alfa").update(backup_schedule="daily")

    # What a worker does with the message beat sends every minute: the cron's enqueue.
    assert tasks.scheduled_backups_enqueue_task.apply().get() == {"enqueued": 1}
    assert tasks.scheduled_backups_enqueue_task.apply().get() == {"enqueued": 0}  # the slot is claimed

    assert redis.Redis.from_url(broker).llen("celery") == 1
    assert ScheduledBackupClaim.objects.get(clinic__schema_name="alfa").worker.startswith("queued:")
