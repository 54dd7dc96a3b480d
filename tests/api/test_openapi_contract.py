"""The OpenAPI schema tells the truth: schemathesis, every check, against a live server.

A real ``manage.py runserver`` process on a free loopback port serves the test
database; schemathesis (its CLI, as an operator would run it) sends schema-made
and deliberately invalid requests to every operation of a clinic of its own,
logged in as its admin. Bounded and repeatable: a fixed number of examples per
operation, a fixed seed, one worker, no example database carried between runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.models import BackupDownload, BackupRecord, BackupRestore
from apps.backups.restore.swap import restore_leftover_schemas_drop
from apps.tenants.models import Clinic
from tests.conftest import PASSWORD, make_clinic
from tests.support.processes import subprocess_env

SCHEMA = "contrato"
MAX_EXAMPLES = 5
SEED = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the test server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the test server did not start")


@pytest.fixture
def contract_clinic(clinics, django_db_blocker):
    """A clinic of its own: schemathesis backs it up, restores it and changes its schedule."""
    from datetime import timedelta

    from django.utils import timezone

    with django_db_blocker.unblock():
        fixture = make_clinic(SCHEMA, "Clínica Contrato", scale=0.02)
        yield fixture
        connection.set_schema_to_public()
        restore_leftover_schemas_drop(older_than=timezone.now() + timedelta(days=1))
        clinic = Clinic.objects.get(schema_name=SCHEMA)
        with schema_context(SCHEMA):
            BackupRestore.objects.all().delete()
            BackupDownload.objects.all().delete()
            BackupRecord.objects.all().delete()
        clinic.delete(force_drop=True)


@pytest.fixture
def live_server_url(contract_clinic, tmp_path):
    port = free_port()
    env = subprocess_env(tmp_path) | {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the tokens made here must be valid there
        "MAX_BACKUP_SIZE": str(50 * 1024 * 1024),
        # Negative tests send wrong passwords by design; the lockout (tested in tests/users) would
        # otherwise refuse the hook's own sign-ins from this address.
        "AUTH_LOCKOUT_FAILURES": "1000000",
        # Jobs (restores, ?async=true backups) run inside the request that asks for them,
        # as in the other API tests: the reply is the same 202, and they really run.
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    # The server's log goes to a file: a pipe nobody reads fills up (64 kB) and then
    # blocks every request thread on its next log line.
    log = tmp_path / "runserver.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_every_operation_conforms_to_the_openapi_schema(contract_clinic, live_server_url, tmp_path):
    client = contract_clinic.client()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    schema_file = tmp_path / "openapi.json"
    schema_file.write_bytes(schema.content)

    report = tmp_path / "report"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(schema_file),
        "--url",
        live_server_url,
        "-H",
        f"Host: {contract_clinic.domain}",
        "-H",
        "Connection: close",  # runserver and keep-alive after an unread body do not mix
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
    ]
    # A restore (which schemathesis does make) ends earlier sessions: the hook logs in again as needed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")} | {
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "PYTHONPATH": str(settings.BASE_DIR),
        "CONTRACT_BASE_URL": live_server_url,
        "CONTRACT_HOST": contract_clinic.domain,
        "CONTRACT_EMAIL": contract_clinic.admin.email,
        "CONTRACT_PASSWORD": PASSWORD,
    }
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary + result.stderr[-2000:]
    assert "No issues found" in result.stdout, summary
    # Every operation of the schema was really exercised.
    operations = sum(len(methods) for methods in json.loads(schema.content)["paths"].values())
    assert operations >= 8 and f"Tested: {operations}\n" in result.stdout, summary
