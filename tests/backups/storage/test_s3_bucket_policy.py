"""The ``s3`` backend against moto with IAM enforced, as a real bucket with a
least-privilege key: the README's permission list is enough for everything a
backup's life needs (and a key missing one of them fails), ``BACKUP_S3_PREFIX``
holds every key, virtual-host addressing works, listings go past 1,000 objects,
and no request ever carries an ACL.

Requests go through a recording HTTP proxy (``HTTP_PROXY``, honoured by botocore),
which is also how ``<bucket>.localhost`` reaches moto without DNS.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.backups.errors import StorageError
from apps.backups.models import BackupRecord
from apps.backups.scheduling.retention import backup_delete
from apps.backups.services import backup_create, backup_open_plain
from apps.backups.storage import get_backup_storage
from tests.support.s3_server import REGION, free_port

BUCKET = "psico-backups"
PREFIX = "produccion/backups"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def readme_s3_actions() -> list[str]:
    """The permission list as the README gives it to operators."""
    readme = (Path(django_settings.BASE_DIR) / "README.md").read_text()
    sentence = re.search(r"Give the key only (.+?) on that bucket", readme, re.S).group(1)
    return ["s3:" + name.removeprefix("s3:") for name in re.findall(r"`([^`]+)`", sentence)]


def policy(actions: list[str]) -> str:
    resources = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}
    )


@dataclass
class Seen:
    method: str
    host: str
    path: str
    headers: dict[str, str]


@dataclass
class RecordingProxy:
    """A forward proxy for plain HTTP: records each request and sends it to moto."""

    upstream_port: int
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> RecordingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                target = urlsplit(self.path)
                path = target.path + (f"?{target.query}" if target.query else "")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"proxy-connection"}}
                proxy.seen.append(Seen(self.command, self.headers.get("Host", ""), path, headers))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                upstream.request(self.command, path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server's names)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class IamMoto:
    process: subprocess.Popen
    port: int
    admin: dict[str, str]

    def key_for(self, user: str, actions: list[str]) -> dict[str, str]:
        iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{self.port}", region_name=REGION, **self.admin)
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="backups", PolicyDocument=policy(actions))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    def admin_s3(self):
        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name=REGION, **self.admin)


@pytest.fixture(scope="module")
def moto_iam():
    """moto_server with IAM enforced after three unauthenticated calls, which create
    an administrator; the bucket and the backup keys are then made with its key."""
    for _ in range(3):  # a port taken between probing and binding: try another
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
        )
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            try:
                iam = boto3.client(
                    "iam",
                    endpoint_url=f"http://127.0.0.1:{port}",
                    region_name=REGION,
                    aws_access_key_id="bootstrap",
                    aws_secret_access_key="x",
                )
                iam.create_user(UserName="admin")
                break
            except Exception:
                time.sleep(0.2)
        if process.poll() is None and time.monotonic() < deadline:
            iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=ALLOW_ALL)
            key = iam.create_access_key(UserName="admin")["AccessKey"]
            server = IamMoto(
                process,
                port,
                {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]},
            )
            server.admin_s3().create_bucket(Bucket=BUCKET)
            yield server
            process.terminate()
            process.wait(timeout=10)
            return
        process.kill()
        process.wait(timeout=10)
    raise RuntimeError("moto_server no arrancó")


@pytest.fixture
def s3_as(moto_iam, settings, monkeypatch):
    """``s3_as(key, addressing)``: backups go to the bucket with that key, through a recording proxy."""
    proxies = []

    def configure(key: dict[str, str], addressing: str = "path") -> RecordingProxy:
        proxy = RecordingProxy(moto_iam.port).start()
        proxies.append(proxy)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        # The administrator's client (127.0.0.1) goes straight to moto; only ours is recorded.
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.delenv("no_proxy", raising=False)
        settings.BACKUP_STORAGE_BACKEND = "s3"
        settings.BACKUP_S3_BUCKET = BUCKET
        # Never resolved (the proxy forwards it): ``<bucket>.localhost`` for virtual addressing.
        settings.BACKUP_S3_ENDPOINT_URL = f"http://localhost:{moto_iam.port}"
        settings.BACKUP_S3_REGION = REGION
        settings.BACKUP_S3_ACCESS_KEY_ID = key["aws_access_key_id"]
        settings.BACKUP_S3_SECRET_ACCESS_KEY = key["aws_secret_access_key"]
        settings.BACKUP_S3_ADDRESSING_STYLE = addressing
        settings.BACKUP_S3_PREFIX = PREFIX
        settings.BACKUP_S3_PART_SIZE_MB = 5
        settings.BACKUP_STORAGE_MAX_ATTEMPTS = 1
        return proxy

    yield configure
    for proxy in proxies:
        proxy.stop()
    admin = moto_iam.admin_s3()
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            admin.delete_object(Bucket=BUCKET, Key=item["Key"])


def a_backups_whole_life(clinic) -> BackupRecord:
    """Write (multipart too), verify, manifest, list, download, clean up after a crashed
    writer, delete: every call the backend makes for a backup."""
    storage = get_backup_storage()
    record = backup_create(clinic=clinic, backup_type="manual")
    with backup_open_plain(record=record) as chunks:
        assert b"CREATE TABLE beta." in b"".join(chunks)
    with storage.open_write("beta/backup-sql-beta-2020-01-01-000000.sql.zst") as stream:
        stream.write(os.urandom(12 * 1024 * 1024))  # three parts
    assert storage.exists("beta/backup-sql-beta-2020-01-01-000000.sql.zst")
    listed = {item.path for item in storage.list("beta/")}
    assert {record.file_path, record.manifest_path} <= listed
    storage.abandoned_writes_remove("beta/", older_than=timezone.now() + timedelta(minutes=1))
    storage.delete("beta/backup-sql-beta-2020-01-01-000000.sql.zst")
    return record


@pytest.mark.parametrize("addressing", ["path", "virtual"])
def test_the_readmes_permission_list_is_enough_for_a_backups_whole_life(committed, moto_iam, s3_as, addressing):
    actions = readme_s3_actions()
    assert len(actions) == 6, actions
    proxy = s3_as(moto_iam.key_for(f"backups-{addressing}", actions), addressing)
    admin = moto_iam.admin_s3()
    # A writer killed mid-upload: its multipart upload is still open.
    admin.create_multipart_upload(Bucket=BUCKET, Key=f"{PREFIX}/beta/backup-sql-beta-2020-01-02-000000.sql.zst")

    record = a_backups_whole_life(committed["beta"].clinic)
    from django_tenants.utils import schema_context

    with schema_context("beta"):
        backup_delete(record=BackupRecord.objects.get(pk=record.pk), storage=get_backup_storage())

    keys = [item["Key"] for item in admin.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == []
    assert admin.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert proxy.seen, "nothing went through the proxy"
    # Every request under the prefix, addressed as configured, without an ACL.
    for request in proxy.seen:
        if addressing == "virtual":
            assert request.host.startswith(f"{BUCKET}.localhost"), request
            assert request.path.startswith(f"/{PREFIX}/beta/") or request.path.startswith("/?"), request
        else:
            assert request.host.startswith("localhost"), request
            assert request.path.startswith(f"/{BUCKET}/{PREFIX}/beta/") or request.path.startswith(f"/{BUCKET}?")
        assert not any(
            name.lower().startswith("x-amz-grant") or name.lower() == "x-amz-acl" for name in request.headers
        )
        assert "acl" not in urlsplit(request.path).query.split("&")


@pytest.mark.parametrize("missing", ["s3:DeleteObject", "s3:ListBucket", "s3:AbortMultipartUpload"])
def test_a_key_without_one_of_them_fails(committed, moto_iam, s3_as, missing):
    """So that the test above proves the list is needed, and that IAM is enforced."""
    actions = [action for action in readme_s3_actions() if action != missing]
    s3_as(moto_iam.key_for(f"backups-sin-{missing.split(':')[1].lower()}", actions))
    moto_iam.admin_s3().create_multipart_upload(
        Bucket=BUCKET, Key=f"{PREFIX}/beta/backup-sql-beta-2020-01-02-000000.sql.zst"
    )
    with pytest.raises(StorageError):
        a_backups_whole_life(committed["beta"].clinic)


def test_a_listing_of_more_than_1000_objects_is_complete(committed, moto_iam, s3_as):
    s3_as(moto_iam.key_for("backups-listado", readme_s3_actions()))
    admin = moto_iam.admin_s3()
    names = {f"beta/backup-sql-beta-2020-01-01-{number:06d}.sql.zst" for number in range(1010)}
    for name in names:
        admin.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}", Body=b"x")
    admin.put_object(Bucket=BUCKET, Key=f"{PREFIX}/betazeta/otro.sql.zst", Body=b"x")
    admin.put_object(Bucket=BUCKET, Key="beta/fuera-del-prefijo.sql.zst", Body=b"x")

    listed = get_backup_storage().list("beta/")

    assert {item.path for item in listed} == names
