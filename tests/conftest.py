"""Shared fixtures: a real PostgreSQL test database with two committed clinics.

The test database is created once per session (always, whatever tests are
selected) and migrated. The two clinics (``alfa`` and ``beta``, with demo data)
are created once per session and committed, so that other connections and
subprocesses such as pg_dump see them. Then either:

- ``alfa`` / ``beta``: the test runs in a transaction rolled back at its end
  (pytest-django's ``db``), for API and model tests; or
- ``committed``: the test runs without a wrapping transaction, as production
  code does (backups read through their own connections), and the backup
  records it made are deleted afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import redis
from django.db import connection, connections
from django.test.utils import setup_databases, teardown_databases
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from apps.backups.models import BackupDownload, BackupJob, BackupRecord, BackupRestore
from apps.backups.restore.swap import restore_leftover_schemas_drop
from apps.tenants.demo_data import demo_data_generate
from apps.tenants.models import Clinic
from apps.tenants.services import clinic_create
from apps.users.models import User
from config import embedded_redis
from tests.support.celery_workers import celery_app_using
from tests.support.processes import subprocess_env

PASSWORD = "clave-de-prueba-123"


@dataclass
class ClinicFixture:
    clinic: Clinic
    domain: str
    admin: User
    staff: User

    def client(self) -> APIClient:
        return APIClient(HTTP_HOST=self.domain)

    def token_for(self, user: User) -> str:
        response = self.client().post("/api/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
        assert response.status_code == 200, response.content
        return response.json()["access"]

    def admin_client(self) -> APIClient:
        client = self.client()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token_for(self.admin)}")
        return client


def make_clinic(schema_name: str, name: str, scale: float) -> ClinicFixture:
    domain = f"{schema_name}.test.localhost"
    clinic = clinic_create(schema_name=schema_name, name=name, domain=domain)
    with schema_context(schema_name):
        admin = User.objects.create_user(f"admin@{schema_name}.com", PASSWORD, role=User.Role.CLINIC_ADMIN)
        staff = User.objects.create_user(f"recepcion@{schema_name}.com", PASSWORD, role=User.Role.RECEPTIONIST)
        demo_data_generate(schema_name=schema_name, scale=scale)
    return ClinicFixture(clinic=clinic, domain=domain, admin=admin, staff=staff)


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """Create and migrate the test database, whichever tests were selected."""
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default", "backup_reader"})
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def clinics(django_db_setup, django_db_blocker) -> dict[str, ClinicFixture]:
    with django_db_blocker.unblock():
        return {
            "alfa": make_clinic("alfa", "Clínica Alfa Ñandú", scale=0.3),
            "beta": make_clinic("beta", "Clínica Beta Óptima", scale=0.1),
        }


@pytest.fixture
def committed(clinics, django_db_blocker):
    """Database access without a wrapping transaction; backup records are removed afterwards."""
    with django_db_blocker.unblock():
        yield clinics
        connection.set_schema_to_public()
        for fixture in clinics.values():
            with schema_context(fixture.clinic.schema_name):
                BackupJob.objects.all().delete()
                BackupRestore.objects.all().delete()
                BackupDownload.objects.all().delete()
                BackupRecord.objects.all().delete()
        restore_leftover_schemas_drop(older_than=timezone.now() + timedelta(days=1))


@pytest.fixture
def alfa(clinics, db) -> ClinicFixture:
    return clinics["alfa"]


@pytest.fixture
def beta(clinics, db) -> ClinicFixture:
    return clinics["beta"]


@pytest.fixture(autouse=True)
def _back_to_public_schema():
    yield
    connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def backup_settings(settings, tmp_path):
    """Each test gets its own empty bucket folder and no encryption keys unless it sets them."""
    settings.BACKUP_STORAGE_BACKEND = "local"
    settings.BACKUP_LOCAL_ROOT = tmp_path / "bucket"
    settings.BACKUP_AGE_IDENTITY_FILE = ""
    settings.BACKUP_AGE_RECIPIENTS = []
    settings.BACKUP_PG_BIN_DIR = ""
    settings.BACKUP_SQL_STYLE = "copy"
    settings.DATA_DIR = tmp_path / "data"
    # Jobs run in the test's own process unless a test starts real workers (tests/backups/jobs).
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_BROKER_CONFIGURED = False
    return settings


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The project-local Redis (``config/embedded_redis.py``: ``EMBEDDED_REDIS_PORT``,
    files in ``.data/redis/``), started if needed as ``make serve`` starts it and
    left running like the embedded PostgreSQL (``make db-stop`` stops both). The
    tests use its database 15, emptied before each test that uses it, so jobs a
    developer queued (database 0) are left alone."""
    data_dir, port = embedded_redis.configured_location()
    return embedded_redis.ensure_running(data_dir, port).rsplit("/", 1)[0] + "/15"


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
