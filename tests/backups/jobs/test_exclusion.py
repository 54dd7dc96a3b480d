"""A restore job and a backup job for the same clinic never overlap.

The rule (README "Jobs and the clinic's lock"): a job the clinic cannot take
now is refused at once with 409 and nothing is queued — the request tries the
clinic's lock (held by whatever runs, in any process on any machine) and looks
for a restore, drill or recovery already waiting in the queue. The worker then
takes the real lock when the job runs, so a clinic taken in between fails the
job with the same message instead of running beside the other operation.
"""

from __future__ import annotations

import redis
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.locking import clinic_lock
from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.services import backup_create
from tests.backups.jobs.test_long_restore import slow_psql_folder
from tests.backups.restore.test_swap import change_clinic_data
from tests.support.celery_workers import wait_until, workers_running
from tests.support.database import table_hashes

RESTORE_URL = "/api/backups/restore/"
CREATE_URL = "/api/backups/create/"


def job(job_id: int) -> BackupJob:
    with schema_context("alfa"):
        return BackupJob.objects.select_related("backup", "restore").get(pk=job_id)


def jobs() -> list[tuple[str, str]]:
    with schema_context("alfa"):
        return list(BackupJob.objects.order_by("pk").values_list("kind", "status"))


def test_while_a_restore_job_runs_a_backup_or_another_restore_is_refused_at_once(
    committed, broker, worker_env, tmp_path
):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    env = worker_env | {"BACKUP_PG_BIN_DIR": str(slow_psql_folder(tmp_path / "bin"))}

    with workers_running(2, env=env, folder=tmp_path / "workers"):
        client = alfa.admin_client()
        restore = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json").json()["job"]
        wait_until(lambda: job(restore["id"]).phase == "loading")  # a worker process holds the clinic

        refused = [
            client.post(f"{CREATE_URL}?async=true"),
            client.post(RESTORE_URL, {"backup_id": record.pk}, format="json"),
            client.post(CREATE_URL),  # the guide's synchronous backup too
        ]
        # Nothing was queued: the free worker has nothing to pick up.
        assert redis.Redis.from_url(broker).llen("celery") == 0
        wait_until(lambda: job(restore["id"]).is_finished)

    assert [response.status_code for response in refused] == [409, 409, 409]
    for response in refused:
        assert "ocupada: hay una restauración en curso" in response.json()["error"], response.json()
    assert jobs() == [("restore", "succeeded")]
    with schema_context("alfa"):
        assert list(BackupRecord.objects.values_list("pk", flat=True)) == [record.pk]


def test_a_restore_waiting_in_the_queue_refuses_another_restore_and_a_backup(committed, broker):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = alfa.admin_client()

    first = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")  # no worker: it waits
    again = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")
    backup = client.post(f"{CREATE_URL}?async=true")

    assert first.status_code == 202, first.content
    assert (again.status_code, backup.status_code) == (409, 409)
    waiting = f"hay una restauración en cola (tarea {first.json()['job']['id']})"
    assert waiting in again.json()["error"] and waiting in backup.json()["error"]
    assert jobs() == [("restore", "queued")]
    assert redis.Redis.from_url(broker).llen("celery") == 1


def test_the_worker_takes_the_clinics_lock_itself_when_the_job_runs(committed, broker, worker_env, tmp_path):
    """Queued while the clinic was free; another process holds it when the worker
    gets there: the job fails with the clinic-busy message and changes nothing."""
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    change_clinic_data("alfa")
    client = alfa.admin_client()  # signing in writes the user's last login and token
    before = table_hashes("alfa")
    restore = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json").json()["job"]

    # A backup runs in another process (this one: its own database connection) from now on.
    with clinic_lock(schema_name="alfa", operation="backup", shared=True):
        with workers_running(1, env=worker_env, folder=tmp_path / "workers"):
            wait_until(lambda: job(restore["id"]).is_finished)
            restored = job(restore["id"])
            # And the other way round: a backup job meets a restore holding the clinic.
            backup = client.post(f"{CREATE_URL}?async=true").json()["job"]
            wait_until(lambda: job(backup["id"]).is_finished)
        # (the shared lock let the backup job start; see the exclusive case below)
    assert (restored.status, restored.restore) == ("failed", None)
    assert "ocupada: hay un backup en curso" in restored.error, restored.error
    assert table_hashes("alfa") == before
    with schema_context("alfa"):
        assert not BackupRestore.objects.filter(status="succeeded").exists()
    assert job(backup["id"]).status == "succeeded"  # backups share the clinic with backups

    backup = client.post(f"{CREATE_URL}?async=true").json()["job"]
    with clinic_lock(schema_name="alfa", operation="restore"):
        with workers_running(1, env=worker_env, folder=tmp_path / "workers-2"):
            wait_until(lambda: job(backup["id"]).is_finished)
    failed = job(backup["id"])
    assert (failed.status, failed.backup) == ("failed", None)
    assert "ocupada: hay una restauración en curso" in failed.error, failed.error
    with schema_context("alfa"):
        assert BackupRecord.objects.filter(status="succeeded").count() == 2  # the first one and the shared one
