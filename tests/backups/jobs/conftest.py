"""Job tests against a real Redis and real Celery worker processes (the broker
fixtures, ``broker`` and ``worker_env``, are in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.tenants.models import Clinic, ScheduledBackupClaim


@pytest.fixture
def schedules_reset(committed):
    """Clinics' schedule state and slot claims back to their defaults afterwards."""
    yield committed
    ScheduledBackupClaim.objects.all().delete()
    Clinic.objects.exclude(schema_name="public").update(
        backup_schedule="disabled",
        last_backup_at=None,
        next_scheduled_backup=None,
        backup_failures=0,
        backup_retry_at=None,
        backup_last_error="",
    )


def job_get(schema_name: str, job_id: int) -> BackupJob:
    with schema_context(schema_name):
        return BackupJob.objects.select_related("backup", "restore").get(pk=job_id)
