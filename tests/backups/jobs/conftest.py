"""Job tests against a real Redis and real Celery worker processes."""

from __future__ import annotations

import pytest
import redis
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.tenants.models import Clinic, ScheduledBackupClaim
from tests.support.celery_workers import celery_app_using, redis_running
from tests.support.processes import subprocess_env


@pytest.fixture(scope="session")
def redis_url() -> str:
    with redis_running() as url:
        yield url


@pytest.fixture
def broker(settings, redis_url) -> str:
    """This test sends its jobs to the real broker (not run in its own process)."""
    redis.Redis.from_url(redis_url).flushdb()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_CONFIGURED = True
    settings.CELERY_BROKER_URL = redis_url
    settings.CELERY_RESULT_BACKEND = redis_url
    with celery_app_using(redis_url):
        yield redis_url


@pytest.fixture
def worker_env(broker, tmp_path) -> dict[str, str]:
    """Environment of worker (and web) processes: the test database, bucket and broker."""
    return subprocess_env(tmp_path) | {
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "BACKUP_JOB_RESTORE_INTERVAL": "1",
        "LOG_LEVEL": "INFO",
    }


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
