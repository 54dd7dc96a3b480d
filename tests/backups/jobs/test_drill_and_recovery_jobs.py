"""Restore drills and disaster recovery as jobs on a real worker process."""

from __future__ import annotations

from django.core.management import call_command
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.services import backup_create
from tests.support.celery_workers import wait_until, workers_running
from tests.support.database import table_hashes


def only_job(schema_name: str) -> BackupJob:
    with schema_context(schema_name):
        return BackupJob.objects.select_related("restore").get()


def test_drill_and_recovery_jobs_run_on_a_worker(committed, broker, worker_env, tmp_path, capsys):
    backup_create(clinic=committed["alfa"].clinic, backup_type="manual")
    backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    beta_before = table_hashes("beta")

    call_command("restore_drill", "alfa", "--async")
    call_command("restore_clinic_from_storage", "beta", "--async")
    out = capsys.readouterr().out
    assert "alfa: simulacro en cola" in out and "Recuperación de beta en cola" in out
    assert only_job("alfa").status == only_job("beta").status == "queued"

    with workers_running(1, env=worker_env, folder=tmp_path / "workers"):
        wait_until(lambda: only_job("alfa").is_finished and only_job("beta").is_finished, timeout=300)

    drill = only_job("alfa")
    assert (drill.kind, drill.status, drill.error) == ("drill", "succeeded", "")
    assert drill.result["passed"] is True and drill.result["mismatches"] == {}
    assert drill.rows_done == drill.rows_total > 0 and drill.bytes_done == drill.bytes_total > 0
    recovery = only_job("beta")
    assert (recovery.kind, recovery.status, recovery.error) == ("recovery", "succeeded", "")
    assert recovery.restore.source == "storage" and recovery.restore.status == "succeeded"
    assert table_hashes("beta") == beta_before
