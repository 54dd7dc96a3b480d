"""A JSON backup whose load fails part-way leaves the clinic exactly as it was.

The backup is genuine (made by ``backup_create``, checksums intact) but holds a row
the freshly migrated schema refuses: the live table had its NOT NULL relaxed when
the backup was made. Rows of the models before it are already loaded when it fails.
"""

import psycopg
import pytest
from django_tenants.utils import schema_context

from apps.backups.engine.pg_clients import libpq_params
from apps.backups.models import BackupRestore
from apps.backups.services import backup_create
from tests.backups.restore.test_swap import RESTORE_URL, job_after, schemas
from tests.support.database import table_hashes


@pytest.fixture
def payment_without_currency(committed):
    """One payment, in the middle of beta's table, with a NULL the migrations forbid."""
    with psycopg.connect(**libpq_params(), autocommit=True) as conn:
        conn.execute("ALTER TABLE beta.payment_system_payment ALTER COLUMN currency DROP NOT NULL")
        (pk,) = conn.execute(
            "SELECT id FROM beta.payment_system_payment ORDER BY id OFFSET "
            "(SELECT count(*) / 2 FROM beta.payment_system_payment) LIMIT 1"
        ).fetchone()
        conn.execute("UPDATE beta.payment_system_payment SET currency = NULL WHERE id = %s", [pk])
    try:
        yield pk
    finally:
        with psycopg.connect(**libpq_params(), autocommit=True) as conn:
            conn.execute("UPDATE beta.payment_system_payment SET currency = 'EUR' WHERE currency IS NULL")
            conn.execute("ALTER TABLE beta.payment_system_payment ALTER COLUMN currency SET NOT NULL")


def test_a_json_load_failing_part_way_leaves_the_clinic_as_it_was(
    committed, settings, tmp_path, payment_without_currency, caplog
):
    beta = committed["beta"]
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "no-pg-dump")  # the JSON format
    record = backup_create(clinic=beta.clinic, backup_type="manual")
    assert record.format == "json" and record.status == "succeeded"
    client = beta.admin_client()  # logging in writes last_login: before the snapshot below
    before_tables, before_schemas = table_hashes("beta", exclude_prefix="-"), schemas()

    response = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 202, response.content  # a job (run in the test's process here)
    job = job_after(response, "beta")
    # A backup of ours that will not load is a server fault (issue 11): a plain message
    # for the admin in the job, the database's detail in the log only.
    assert job.status == "failed" and "error del servidor" in job.error and "currency" not in job.error
    assert "currency" in caplog.text
    # The log names the fault, not the row PostgreSQL quoted (clinical data stays out of logs).
    assert "Failing row contains (…)" in caplog.text
    assert f"Failing row contains ({payment_without_currency}," not in caplog.text
    after_tables = table_hashes("beta", exclude_prefix="-")
    restores = after_tables.pop("backups_backuprestore")
    before_tables.pop("backups_backuprestore")
    after_tables.pop("backups_backupjob")
    before_tables.pop("backups_backupjob")
    assert after_tables == before_tables
    assert restores.startswith("1:")
    assert schemas() == before_schemas  # no incoming schema left, nothing set aside
    with schema_context("beta"):
        failed = BackupRestore.objects.get()
    assert failed.status == "failed" and failed.backup_id == record.pk and "error del servidor" in failed.error
