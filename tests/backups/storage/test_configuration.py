"""Choosing a remote backend: wrong keys, missing settings, missing libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.backups.errors import StorageError
from apps.backups.storage import get_backup_storage
from tests.backups.storage.conftest import MAX_ATTEMPTS

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def s3(request, settings):
    from tests.backups.storage.conftest import use_s3

    return use_s3(settings, *request.getfixturevalue("s3_server"))


@pytest.fixture
def supabase(request, settings):
    from tests.backups.storage.conftest import use_supabase

    return use_supabase(settings, *request.getfixturevalue("supabase_server"))


def test_s3_wrong_secret_is_a_clear_error_that_names_the_keys(s3, settings, caplog):
    settings.BACKUP_S3_SECRET_ACCESS_KEY = "clave-equivocada"
    storage = get_backup_storage()
    before = s3.proxy.requests_seen
    with pytest.raises(StorageError) as raised:
        storage.write_bytes("alfa/x.sql.zst", b"datos")
    message = str(raised.value)
    assert "BACKUP_S3_ACCESS_KEY_ID" in message and "BACKUP_S3_SECRET_ACCESS_KEY" in message
    assert "SignatureDoesNotMatch" in message
    assert "clave-equivocada" not in message + caplog.text
    # It reached the server once: a real refusal, not retried (by us or by botocore).
    assert s3.proxy.requests_seen - before == 1
    assert s3.raw_keys() == []


@pytest.fixture(params=["s3", "supabase"])
def ready(request, settings):
    """A remote backend whose first request (supabase: its key and bucket check) is done."""
    from tests.backups.storage.conftest import backend_for

    backend = backend_for(request.param, request, settings)
    storage = get_backup_storage()
    storage.write_bytes("alfa/x.sql.zst", b"datos")
    yield backend, storage
    backend.proxy.reset()


@pytest.mark.parametrize("kind", ["503", "drop"])
def test_a_persistently_failing_call_costs_exactly_max_attempts_requests(ready, kind):
    backend, storage = ready
    before = backend.proxy.requests_seen
    backend.proxy.fail(kind, nth=1, times=1000)
    with pytest.raises(StorageError, match=f"tras {MAX_ATTEMPTS} intentos"):
        storage.exists("alfa/x.sql.zst")
    assert backend.proxy.requests_seen - before == MAX_ATTEMPTS


@pytest.mark.parametrize("times", [1, 2, MAX_ATTEMPTS - 1])
def test_transient_faults_cost_one_request_more_each(ready, times):
    backend, storage = ready
    before = backend.proxy.requests_seen
    backend.proxy.fail("503", nth=1, times=times)
    assert storage.exists("alfa/x.sql.zst")
    assert backend.proxy.requests_seen - before == 1 + times


def test_s3_missing_bucket_is_named(s3, settings):
    settings.BACKUP_S3_BUCKET = "no-existe-este-bucket"
    with pytest.raises(StorageError, match="no-existe-este-bucket"):
        get_backup_storage().write_bytes("alfa/x.sql.zst", b"datos")


def test_supabase_wrong_key_names_the_service_role_key_and_bucket_policy(supabase, settings, caplog):
    settings.SUPABASE_KEY = "clave-anon-equivocada"
    storage = get_backup_storage()
    before = supabase.proxy.requests_seen
    for operation in (
        lambda: storage.write_bytes("alfa/x.sql.zst", b"datos"),
        lambda: storage.read_bytes("alfa/x.sql.zst"),
        lambda: storage.list("alfa/"),
        lambda: storage.exists("alfa/x.sql.zst"),
    ):
        with pytest.raises(StorageError) as raised:
            operation()
        message = str(raised.value)
        assert "(403)" in message
        assert "SUPABASE_KEY" in message and "service_role" in message and "políticas del bucket" in message
        assert settings.SUPABASE_KEY not in message + caplog.text
    assert supabase.proxy.requests_seen - before == 4  # one refused request each, none retried
    assert supabase.raw_keys() == []


def test_supabase_missing_bucket_is_named(supabase, settings):
    settings.SUPABASE_BUCKET_NAME = "otro-bucket"
    with pytest.raises(StorageError, match="otro-bucket"):
        get_backup_storage().write_bytes("alfa/x.sql.zst", b"datos")


@pytest.mark.parametrize(
    ("backend", "unset", "hint"),
    [
        ("s3", "BACKUP_S3_BUCKET", "BACKUP_S3_BUCKET"),
        ("supabase", "SUPABASE_URL", "SUPABASE_URL"),
        ("supabase", "SUPABASE_KEY", "service_role"),
    ],
)
def test_missing_settings_are_improperly_configured_when_chosen(settings, backend, unset, hint):
    settings.BACKUP_S3_BUCKET = "psico"
    settings.BACKUP_S3_ACCESS_KEY_ID = "AKIAEJEMPLO"
    settings.BACKUP_S3_SECRET_ACCESS_KEY = "secreto"
    settings.SUPABASE_URL = "https://proyecto.supabase.co"
    settings.SUPABASE_KEY = "clave"
    setattr(settings, unset, "")
    settings.BACKUP_STORAGE_BACKEND = backend
    with pytest.raises(ImproperlyConfigured, match=hint):
        get_backup_storage()


def test_s3_without_any_credentials_is_improperly_configured(settings, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.BACKUP_STORAGE_BACKEND = "s3"
    settings.BACKUP_S3_BUCKET = "psico"
    settings.BACKUP_S3_ACCESS_KEY_ID = settings.BACKUP_S3_SECRET_ACCESS_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="no tiene credenciales"):
        get_backup_storage()


@pytest.mark.parametrize(
    ("backend", "module", "hint"), [("s3", "boto3", "boto3"), ("supabase", "supabase", "supabase")]
)
def test_a_missing_library_matters_only_when_its_backend_is_chosen(backend, module, hint, tmp_path):
    """In a process where the library cannot be imported: settings and the local
    backend load fine; choosing the backend is an ImproperlyConfigured with the hint."""
    script = f"""
import sys
sys.modules[{module!r}] = None  # as if it were not installed
import django
django.setup()
from django.core.exceptions import ImproperlyConfigured
from django.test.utils import override_settings
from apps.backups.storage import get_backup_storage
from tests.backups.storage.conftest import MAX_ATTEMPTS
print(type(get_backup_storage()).__name__)
with override_settings(BACKUP_STORAGE_BACKEND={backend!r}):
    try:
        get_backup_storage()
    except ImproperlyConfigured as error:
        print("ImproperlyConfigured:", error)
"""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "BACKUP_S3_BUCKET": "psico",
        "BACKUP_S3_ACCESS_KEY_ID": "AKIAEJEMPLO",
        "BACKUP_S3_SECRET_ACCESS_KEY": "secreto",
        "SUPABASE_URL": "https://proyecto.supabase.co",
        "SUPABASE_KEY": "clave",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "LocalBackupStorage"
    assert lines[1].startswith("ImproperlyConfigured:") and f"pip install {hint}" in lines[1]


def test_a_slow_reply_within_the_timeout_is_waited_for_not_retried(ready):
    """Slowness injected where it is meant: a server 1.5 s slow (under load) is within a
    deployment's timeout, so the call succeeds on its one request."""
    backend, storage = ready
    before = backend.proxy.requests_seen
    backend.proxy.fail("late-reply", nth=1, seconds=1.5)
    assert storage.exists("alfa/x.sql.zst")
    assert backend.proxy.requests_seen - before == 1
