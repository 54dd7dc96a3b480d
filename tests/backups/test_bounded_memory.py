"""Downloads and restores hold a bounded amount of memory whatever the backup's size.

A genuine backup of ``beta`` is grown to ~200 MB of plain SQL (a padding table
loaded with COPY), stored compressed as the engine stores any backup, and its record
updated to match. A separate process then downloads it through the API (streamed,
decompressed, checked) and restores it through the API (psql is its own process);
its peak RSS may grow by far less than the backup's size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import psycopg
from django.conf import settings
from django_tenants.utils import schema_context

from apps.backups.engine.pg_clients import libpq_params
from apps.backups.engine.pipeline import store_stream
from apps.backups.engine.streams import IterableReader
from apps.backups.models import BackupRecord
from apps.backups.services import backup_create, backup_open_plain
from apps.backups.storage import get_backup_storage
from tests.conftest import PASSWORD
from tests.support.processes import subprocess_env

PADDING_MB = 200
GROWTH_LIMIT_MB = 64
PADDING_TABLE = "relleno_memoria"
DUMP_END = b"--\n-- PostgreSQL database dump complete"

CHILD = r"""
import json, os, resource, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from rest_framework.test import APIClient

host, email, password, backup_id = sys.argv[1:5]
client = APIClient(HTTP_HOST=host)
token = client.post("/api/auth/token/", {"email": email, "password": password}, format="json").json()["access"]
client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB
result = {"baseline": peak()}
response = client.get(f"/api/backups/history/{backup_id}/download/")
size = 0
for chunk in response.streaming_content:
    size += len(chunk)
result.update(download_status=response.status_code, downloaded=size, after_download=peak())
response = client.post("/api/backups/restore/", {"backup_id": int(backup_id)}, format="json")
result.update(restore_status=response.status_code, restore_body=response.content.decode()[:500], after_restore=peak())
print(json.dumps(result))
"""


def padded(plain: bytes) -> Iterator[bytes]:
    """The dump with a ~200 MB table inserted before its last lines."""
    end = plain.rindex(DUMP_END)
    yield plain[:end]
    yield f"CREATE TABLE beta.{PADDING_TABLE} (n integer, t text);\n".encode()
    yield f"COPY beta.{PADDING_TABLE} (n, t) FROM stdin;\n".encode()
    row_text = "Sesión de seguimiento: el paciente refiere mejoría del sueño. " * 4
    rows_per_chunk = 256
    chunk_rows = len((f"{0}\t{row_text}\n").encode()) * rows_per_chunk
    for start in range(0, PADDING_MB * 1024 * 1024 // chunk_rows * rows_per_chunk, rows_per_chunk):
        yield "".join(f"{n}\t{row_text}\n" for n in range(start, start + rows_per_chunk)).encode()
    yield b"\\.\n\n"
    yield plain[end:]


def test_a_200_mb_backup_downloads_and_restores_in_bounded_memory(committed, tmp_path):
    beta = committed["beta"]
    record = backup_create(clinic=beta.clinic, backup_type="manual")
    with backup_open_plain(record=record) as chunks:
        plain = b"".join(chunks)
    stored = store_stream(
        source=IterableReader(padded(plain)),
        storage=get_backup_storage(),
        path=record.file_path,
        recipients=[],
        level=1,
    )
    assert stored.plain_size > PADDING_MB * 1024 * 1024
    with schema_context("beta"):
        BackupRecord.objects.filter(pk=record.pk).update(
            file_size=stored.plain_size,
            stored_size=stored.stored_size,
            plain_sha256=stored.plain_sha256,
            checksum_sha256=stored.stored_sha256,
        )
    try:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, beta.domain, beta.admin.email, PASSWORD, str(record.pk)],
            cwd=settings.BASE_DIR,
            # The restore job runs in that same process (eager), so its memory is what is measured.
            env=subprocess_env(tmp_path)
            | {"BACKUP_LOCAL_ROOT": str(settings.BACKUP_LOCAL_ROOT), "CELERY_TASK_ALWAYS_EAGER": "true"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert child.returncode == 0, child.stderr
        result = json.loads(child.stdout.strip().splitlines()[-1])

        assert result["download_status"] == 200 and result["downloaded"] == stored.plain_size
        assert result["restore_status"] == 202, (result["restore_body"], child.stderr[-4000:])
        assert '"status":"succeeded"' in result["restore_body"].replace(" ", ""), result["restore_body"]
        with psycopg.connect(**libpq_params()) as conn:
            (rows,) = conn.execute(f"SELECT count(*) FROM beta.{PADDING_TABLE}").fetchone()  # noqa: S608
        assert rows > 500_000  # the padding really was restored
        assert result["after_download"] - result["baseline"] < GROWTH_LIMIT_MB, result
        assert result["after_restore"] - result["baseline"] < GROWTH_LIMIT_MB, result
    finally:
        with psycopg.connect(**libpq_params(), autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS beta.{PADDING_TABLE}")
