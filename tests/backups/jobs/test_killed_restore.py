"""A restore job whose Celery worker is killed (``kill -9``) while it feeds psql
leaves the clinic exactly as it was, wherever the kill lands — just after a
COPY row, after the last COPY block — and the clinic is free again at once.

The worker is the feeder: psql's script comes from it through a pipe. psql gets
exactly the first KILL_AT bytes of its script, then the worker gets SIGKILL, and
psql's input ends once the worker is dead (see ``test_crash_safety``). The
message, unacknowledged, comes back to the next worker, which marks the job
failed instead of restoring behind the admin's back.
"""

from __future__ import annotations

from django_tenants.utils import schema_context

from apps.backups.models import BackupRestore
from apps.backups.services import backup_create
from tests.backups.conftest import pg_client_wrap
from tests.backups.jobs.conftest import job_get
from tests.backups.restore.test_crash_safety import feeder_killing_psql, kill_points, real_psql, restore_backends
from tests.backups.restore.test_swap import schemas
from tests.support.celery_workers import wait_until, worker_start, workers_running
from tests.support.database import table_hashes

RESTORE_URL = "/api/backups/restore/"


def test_a_worker_killed_while_feeding_psql_commits_nothing(
    committed, backed_up_and_changed, broker, worker_env, settings, tmp_path
):
    record, plain, _, schemas_before = backed_up_and_changed
    client = committed["alfa"].admin_client()  # signing in changes users_user: before the hashes
    before = table_hashes("alfa")
    pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql(), feeder_killing_psql(real_psql()))
    env = worker_env | {"BACKUP_PG_BIN_DIR": settings.BACKUP_PG_BIN_DIR, "BACKUP_JOB_VISIBILITY_TIMEOUT": "4"}
    points = [point for point in kill_points(plain) if point[0].startswith(("justo tras una fila", "tras el último"))]
    for index, (where, offset) in enumerate(points[-2:]):
        response = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")
        assert response.status_code == 202, response.content
        job_id = response.json()["job"]["id"]

        doomed = worker_start(name=f"doomed{index}", env=env | {"KILL_AT": str(offset)}, folder=tmp_path)
        try:
            # Reaped here, so that the wrapper sees its parent gone and ends psql's input.
            wait_until(lambda doomed=doomed: doomed.process.poll() is not None, timeout=300)
        finally:
            doomed.stop()
        assert doomed.process.returncode == -9, doomed.output()[-3000:]
        wait_until(lambda: restore_backends() == 0, message="the dead worker's sessions to end")

        assert table_hashes("alfa") == before, where
        assert schemas() == schemas_before, where  # no parked nor incoming schema
        with workers_running(1, env=worker_env | {"BACKUP_JOB_VISIBILITY_TIMEOUT": "4"}, folder=tmp_path) as _heir:
            # The unacknowledged message comes back: the interrupted restore is marked failed, not run again.
            wait_until(lambda job_id=job_id: job_get("alfa", job_id).is_finished, timeout=120)
        job = job_get("alfa", job_id)
        assert job.status == "failed" and job.restore_id is None, (where, job.error)
        assert table_hashes("alfa") == before, where

    # The dead workers' locks went with them: the clinic can be backed up again.
    assert backup_create(clinic=committed["alfa"].clinic, backup_type="manual").status == "succeeded"
    with schema_context("alfa"):
        assert not BackupRestore.objects.exists()  # the killed feeders could record nothing
