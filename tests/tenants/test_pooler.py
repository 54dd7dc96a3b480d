"""Behind a transaction-mode pooler one clinic could see another's data: the
application refuses to start (or to touch the database) there, and names the
direct endpoint. Proven with a real PgBouncer in front of the test database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.tenants.pooler import pooler_problem
from tests.support.celery_workers import worker_start
from tests.support.pgbouncer import pgbouncer_running
from tests.support.processes import subprocess_env

BASE_DIR = Path(settings.BASE_DIR)


def _pgbouncer(pool_mode: str):
    db = settings.DATABASES["default"]
    return pgbouncer_running(server_host=db["HOST"], server_port=int(db["PORT"]), user=db["USER"], pool_mode=pool_mode)


def _env_through(bouncer, tmp_path) -> dict[str, str]:
    db = settings.DATABASES["default"]
    return subprocess_env(tmp_path) | {"DATABASE_URL": bouncer.url(user=db["USER"], dbname=db["NAME"])}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def transaction_pooler(clinics):
    with _pgbouncer("transaction") as bouncer:
        yield bouncer


def test_check_refuses_a_transaction_pooler_and_names_the_server_behind_it(transaction_pooler, tmp_path):
    result = _run(["manage.py", "check"], _env_through(transaction_pooler, tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tenants.E001" in result.stderr
    assert "modo transacción" in result.stderr
    # The direct endpoint, as PostgreSQL sees it, not the pooler's port.
    assert f":{settings.DATABASES['default']['PORT']}." in result.stderr
    assert f":{transaction_pooler.port}" in result.stderr  # ...and which URL was the pooler


def test_the_web_server_does_not_start_behind_a_transaction_pooler(transaction_pooler, tmp_path):
    env = _env_through(transaction_pooler, tmp_path)
    wsgi = _run(["-c", "import config.wsgi"], env)  # what gunicorn imports
    assert wsgi.returncode != 0
    assert "ImproperlyConfigured: tenants.E001" in wsgi.stderr
    served = _run(["manage.py", "runserver", "127.0.0.1:0", "--noreload"], env)
    assert served.returncode != 0
    assert "tenants.E001" in served.stderr


def test_commands_without_system_checks_stop_before_touching_a_clinic(transaction_pooler, tmp_path, committed):
    result = _run(["manage.py", "backup_clinics", "alfa"], _env_through(transaction_pooler, tmp_path))
    assert result.returncode != 0
    assert "tenants.E001" in result.stderr
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()


def test_a_celery_worker_does_not_start_behind_a_transaction_pooler(transaction_pooler, worker_env, tmp_path):
    """Jobs (backups, restores, drills) never run there: the worker stops before taking any."""
    db = settings.DATABASES["default"]
    env = worker_env | {"DATABASE_URL": transaction_pooler.url(user=db["USER"], dbname=db["NAME"])}
    with pytest.raises(RuntimeError, match="did not start") as refused:
        worker_start(name="pooled", env=env, folder=tmp_path / "workers").stop()
    assert "tenants.E001" in str(refused.value) and "modo transacción" in str(refused.value)


def test_a_session_mode_pooler_keeps_each_clinics_session_and_is_accepted(clinics, tmp_path):
    with _pgbouncer("session") as bouncer:
        result = _run(["manage.py", "check"], _env_through(bouncer, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "tenants.E001" not in result.stderr


def test_a_direct_connection_is_accepted():
    assert pooler_problem(settings.DATABASES["default"]) is None


def test_neons_pooled_host_is_refused_naming_the_direct_one_without_connecting():
    problem = pooler_problem(
        {"HOST": "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech", "PORT": "5432", "USER": "neondb_owner"}
    )
    assert "Usa el endpoint directo: ep-cool-darkness-123456.us-east-2.aws.neon.tech" in problem


def test_supabases_transaction_pooler_is_refused_naming_the_session_and_direct_ones():
    host = "aws-0-eu-west-1.pooler.supabase.com"
    problem = pooler_problem({"HOST": host, "PORT": "6543", "USER": "postgres.abcdefgh"})
    assert "db.abcdefgh.supabase.co:5432" in problem
    assert f"{host}:5432" in problem


def test_check_names_neons_direct_endpoint(tmp_path, clinics):
    env = subprocess_env(tmp_path) | {
        "DATABASE_URL": "postgres://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require"
    }
    result = _run(["manage.py", "check"], env)
    assert result.returncode == 1
    assert "ep-cool-darkness-123456.us-east-2.aws.neon.tech" in result.stderr
