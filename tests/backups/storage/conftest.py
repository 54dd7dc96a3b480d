"""Storage backends under test, each against a real server on loopback.

``backend`` is parametrized over ``local``, ``s3`` (moto in server mode) and
``supabase`` (tests/support/fake_supabase.py). The remote servers sit behind a
``FaultProxy`` so a test can make the Nth request fail. Every test gets a fresh,
empty bucket, and the backend is built from settings by the registry, exactly
as the application builds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from apps.backups.storage import BackupStorage, get_backup_storage
from tests.support.fake_supabase import SERVICE_ROLE_KEY, FakeSupabaseStorage
from tests.support.fault_proxy import FaultProxy
from tests.support.s3_server import REGION, S3Server, s3_server_start

TIMEOUT = 30  # seconds per request, as a deployment would use (5–12 MB parts under load)
# Where a test injects a hang it means to see a timeout: it shortens the client's timeout
# to this (``expect_timeouts``) and the proxy hangs a second longer.
SHORT_TIMEOUT = 2
PAID_PLAN_UPLOAD_LIMIT = 5 * 1024**3
MAX_ATTEMPTS = 4  # shorter than the default budget: these tests exhaust it on purpose


@dataclass
class Backend:
    name: str
    settings: object
    proxy: FaultProxy | None
    raw_keys: Callable[[], list[str]]  # everything in the bucket, temporaries and open uploads too
    env: dict[str, str] = field(default_factory=dict)  # the same configuration, as environment variables

    def storage(self) -> BackupStorage:
        return get_backup_storage()


@pytest.fixture(scope="session")
def s3_server():
    server = s3_server_start()
    proxy = FaultProxy("127.0.0.1", server.port, hang_seconds=SHORT_TIMEOUT + 1)
    proxy.s3_upload_times = True  # real initiation times (moto lists them all as 2010)
    yield server, proxy
    proxy.close()
    server.stop()


@pytest.fixture(scope="session")
def supabase_server(tmp_path_factory):
    # A paid plan's raised upload limit: the 256 MB memory test would pass the free plan's 50 MB.
    server = FakeSupabaseStorage(tmp_path_factory.mktemp("supabase"), upload_limit=PAID_PLAN_UPLOAD_LIMIT).start()
    proxy = FaultProxy("127.0.0.1", server.port, hang_seconds=SHORT_TIMEOUT + 1)
    yield server, proxy
    proxy.close()
    server.stop()


@pytest.fixture
def key_revoke(supabase_server):
    """Revoke a key on the (session-wide) stand-in for this test only."""
    server, _proxy = supabase_server
    yield server.key_revoke
    server.key_restore_all()


def _common(settings) -> dict[str, str]:
    settings.BACKUP_STORAGE_TIMEOUT = TIMEOUT
    settings.BACKUP_STORAGE_MAX_ATTEMPTS = MAX_ATTEMPTS
    settings.BACKUP_STORAGE_RETRY_BACKOFF_MS = 20
    return {
        "BACKUP_STORAGE_TIMEOUT": str(TIMEOUT),
        "BACKUP_STORAGE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "BACKUP_STORAGE_RETRY_BACKOFF_MS": "20",
    }


def expect_timeouts(settings) -> None:
    """For a test that makes the proxy hang: the client gives up after SHORT_TIMEOUT."""
    settings.BACKUP_STORAGE_TIMEOUT = SHORT_TIMEOUT


def use_s3(settings, server: S3Server, proxy: FaultProxy) -> Backend:
    bucket = f"psico-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    env = _common(settings) | {
        "BACKUP_STORAGE_BACKEND": "s3",
        "BACKUP_S3_BUCKET": bucket,
        "BACKUP_S3_ENDPOINT_URL": proxy.url,
        "BACKUP_S3_REGION": REGION,
        "BACKUP_S3_ACCESS_KEY_ID": server.access_key_id,
        "BACKUP_S3_SECRET_ACCESS_KEY": server.secret_access_key,
        "BACKUP_S3_ADDRESSING_STYLE": "path",
        "BACKUP_S3_PREFIX": "",
        "BACKUP_S3_PART_SIZE_MB": "5",
    }
    settings.BACKUP_STORAGE_BACKEND = "s3"
    settings.BACKUP_S3_BUCKET = bucket
    settings.BACKUP_S3_ENDPOINT_URL = proxy.url
    settings.BACKUP_S3_REGION = REGION
    settings.BACKUP_S3_ACCESS_KEY_ID = server.access_key_id
    settings.BACKUP_S3_SECRET_ACCESS_KEY = server.secret_access_key
    settings.BACKUP_S3_ADDRESSING_STYLE = "path"
    settings.BACKUP_S3_PREFIX = ""
    settings.BACKUP_S3_PART_SIZE_MB = 5

    def raw_keys() -> list[str]:
        client = server.client()
        keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return sorted(keys + [f"(subida abierta) {upload['Key']}" for upload in uploads])

    return Backend("s3", settings, proxy, raw_keys, env)


def use_supabase(settings, server: FakeSupabaseStorage, proxy: FaultProxy) -> Backend:
    bucket = f"backups-{uuid.uuid4().hex[:12]}"
    server.bucket_create(bucket)
    env = _common(settings) | {
        "BACKUP_STORAGE_BACKEND": "supabase",
        "SUPABASE_URL": proxy.url,
        "SUPABASE_KEY": SERVICE_ROLE_KEY,
        "SUPABASE_BUCKET_NAME": bucket,
    }
    settings.BACKUP_STORAGE_BACKEND = "supabase"
    settings.SUPABASE_URL = proxy.url
    settings.SUPABASE_KEY = SERVICE_ROLE_KEY
    settings.SUPABASE_BUCKET_NAME = bucket
    return Backend("supabase", settings, proxy, lambda: server.stored_keys(bucket), env)


def use_local(settings) -> Backend:
    root = settings.BACKUP_LOCAL_ROOT
    env = {"BACKUP_STORAGE_BACKEND": "local", "BACKUP_LOCAL_ROOT": str(root)}

    def raw_keys() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []

    return Backend("local", settings, None, raw_keys, env)


def backend_for(name: str, request, settings) -> Backend:
    if name == "s3":
        return use_s3(settings, *request.getfixturevalue("s3_server"))
    if name == "supabase":
        return use_supabase(settings, *request.getfixturevalue("supabase_server"))
    return use_local(settings)


@pytest.fixture(params=["local", "s3", "supabase"])
def backend(request, settings) -> Backend:
    chosen = backend_for(request.param, request, settings)
    yield chosen
    if chosen.proxy:
        chosen.proxy.reset()
        chosen.proxy.namespace_s3_errors = False


@pytest.fixture(params=["s3", "supabase"])
def remote(request, settings) -> Backend:
    chosen = backend_for(request.param, request, settings)
    yield chosen
    chosen.proxy.reset()
    chosen.proxy.namespace_s3_errors = False
