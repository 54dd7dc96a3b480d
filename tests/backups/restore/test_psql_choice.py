"""A restore replays the dump with a psql at least as new as the pg_dump that wrote
it (the record's and manifest's ``pg_dump_version``), not merely as new as the server."""

import pytest
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.services import backup_create
from tests.backups.conftest import pg_client_wrap
from tests.backups.restore.test_swap import RESTORE_URL, job_after, schemas
from tests.support.database import table_hashes


@pytest.fixture
def real_psql(real_pg_dump) -> str:
    from pathlib import Path

    return str(Path(real_pg_dump).with_name("psql"))


def made_by_a_newer_pg_dump(clinic, version: str) -> BackupRecord:
    record = backup_create(clinic=clinic, backup_type="manual")
    with schema_context(clinic.schema_name):
        BackupRecord.objects.filter(pk=record.pk).update(pg_dump_version=version)
    return record


def test_a_psql_older_than_the_dumps_pg_dump_is_not_used(committed, settings, tmp_path, real_psql, caplog):
    beta = committed["beta"]
    record = made_by_a_newer_pg_dump(beta.clinic, "99.1")
    ran = tmp_path / "psql-ran"
    # The only psql here is the real one (as new as the server), older than the dump's pg_dump.
    pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql, f'touch {ran}\nexec {real_psql} "$@"\n')
    client = beta.admin_client()
    before = table_hashes("beta", exclude_prefix="-"), schemas()

    response = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 202  # a job (run in the test's process here)
    job = job_after(response, "beta")
    # A server fault (issue 11): a plain message in the job; which psql and why only in the log.
    assert job.status == "failed" and "error del servidor" in job.error and str(tmp_path) not in job.error
    assert "psql" in caplog.text and "< 99" in caplog.text
    assert not ran.exists()
    after = table_hashes("beta", exclude_prefix="-")
    assert after.pop("backups_backuprestore").startswith("1:")  # the failure, recorded
    assert after.pop("backups_backupjob").startswith("1:")  # and its job
    before[0].pop("backups_backuprestore")
    before[0].pop("backups_backupjob")
    assert (after, schemas()) == before
    with schema_context("beta"):
        assert BackupRestore.objects.get().status == "failed"


def test_a_psql_as_new_as_the_dumps_pg_dump_is_chosen(committed, settings, tmp_path, real_psql):
    beta = committed["beta"]
    record = made_by_a_newer_pg_dump(beta.clinic, "99.1")
    ran = tmp_path / "psql-ran"
    script = pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql, f'touch {ran}\nexec {real_psql} "$@"\n')
    script.write_text(
        script.read_text().replace(f"exec {real_psql} --version", 'echo "psql (PostgreSQL) 99.1"; exit 0')
    )

    response = beta.admin_client().post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 202, response.content
    assert job_after(response, "beta").status == "succeeded"
    assert ran.exists()
