"""A restore job and a backup job for the same clinic never overlap: the second
is refused (the per-clinic operation lock of the crash-safety issue, raised as
``ClinicBusyError`` in the services the jobs run) or waits until the first ends."""

from __future__ import annotations

from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.models import BackupRecord
from apps.backups.services import backup_create
from tests.backups.jobs.test_long_restore import slow_psql_folder
from tests.support.celery_workers import wait_until, workers_running


def test_a_restore_job_and_a_backup_job_for_the_same_clinic_never_overlap(committed, worker_env, tmp_path):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    env = worker_env | {"BACKUP_PG_BIN_DIR": str(slow_psql_folder(tmp_path / "bin"))}
    client = alfa.admin_client()

    with workers_running(2, env=env, folder=tmp_path / "workers"):
        restore = client.post("/api/backups/restore/", {"backup_id": record.pk}, format="json").json()["job"]
        wait_until(lambda: job(restore["id"]).phase == "loading")  # the restore holds the clinic
        response = alfa.admin_client().post("/api/backups/create/?async=true")
        assert response.status_code in (202, 409), response.content
        backup = response.json().get("job")
        wait_until(lambda: job(restore["id"]).is_finished and (backup is None or job(backup["id"]).is_finished))

    restored = job(restore["id"])
    assert restored.status == "succeeded", restored.error
    if backup is None:
        return  # refused at once (409)
    backed_up = job(backup["id"])
    if backed_up.status == "failed":
        assert "ocupad" in backed_up.error.lower() or "en curso" in backed_up.error.lower(), backed_up.error
        with schema_context("alfa"):
            assert not BackupRecord.objects.exclude(pk=record.pk).filter(status="succeeded").exists()
    else:  # it waited: its backup began after the restore ended
        assert backed_up.backup.created_at >= restored.finished_at or backed_up.started_at >= restored.finished_at


def job(job_id: int) -> BackupJob:
    with schema_context("alfa"):
        return BackupJob.objects.select_related("backup").get(pk=job_id)
