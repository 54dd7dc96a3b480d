"""Uploaded files are not trusted: only this clinic's own backups are restored."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.services import backup_create, backup_open_plain
from tests.backups.restore.test_swap import RESTORE_URL, change_clinic_data, job_after, schemas
from tests.support.database import table_hashes

PWNED = Path("/tmp/psicoadmin-pwned")


def plain(record: BackupRecord) -> bytes:
    with backup_open_plain(record=record) as chunks:
        return b"".join(chunks)


def world() -> tuple:
    """Everything a refused upload must leave as it was."""
    with schema_context("alfa"):
        restores = BackupRestore.objects.count()
    return table_hashes("alfa", exclude_prefix="-"), table_hashes("beta", exclude_prefix="-"), schemas(), restores


def upload(client, name: str, content: bytes):
    return client.post(RESTORE_URL, {"file": SimpleUploadedFile(name, content)}, format="multipart")


@pytest.fixture
def alfa_dump(committed) -> tuple[BackupRecord, bytes]:
    record = backup_create(clinic=committed["alfa"].clinic, backup_type="manual")
    return record, plain(record)


def test_the_clinics_own_downloaded_backup_is_restored(committed, alfa_dump):
    record, dump = alfa_dump
    before = table_hashes("alfa")
    change_clinic_data("alfa")
    response = upload(committed["alfa"].admin_client(), record.file_name, dump)
    assert response.status_code == 202, response.content
    assert job_after(response, "alfa").status == "succeeded"
    assert table_hashes("alfa") == before
    with schema_context("alfa"):
        restore = BackupRestore.objects.get()
    assert restore.source == "upload" and restore.backup_id == record.pk
    assert restore.uploaded_file_name == record.file_name


def flipped(data: bytes) -> bytes:
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x20
    return bytes(changed)


# One file with every hostile statement: they all stop at the same SHA-256 lookup, so one
# case guards that path; if the lookup let it through, each would leave a visible trace.
HOSTILE_SQL = (
    b"CREATE TABLE alfa.notas_falsas (id int); INSERT INTO alfa.notas_falsas VALUES (1);\n"
    + f"COPY (SELECT 1) TO PROGRAM 'touch {PWNED}';\n".encode()
    + b"DROP SCHEMA beta CASCADE;\n"
    + b"CREATE ROLE intruso SUPERUSER LOGIN PASSWORD 'x';\n"
    + f"\\! touch {PWNED}\n".encode()
)


def roles() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = 'intruso'")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize(
    "case",
    [
        "hostile SQL",  # no backup anywhere has this SHA-256
        "another clinic's backup",  # a succeeded backup has it, in another clinic's schema
        "this clinic's failed backup",  # this clinic's record has it, but it is not succeeded
        "json edited",
    ],
)
def test_files_this_system_did_not_produce_for_this_clinic_are_refused(committed, alfa_dump, case):
    if case == "another clinic's backup":
        content = plain(backup_create(clinic=committed["beta"].clinic, backup_type="manual"))
    elif case == "this clinic's failed backup":
        content = alfa_dump[1]
        with schema_context("alfa"):
            BackupRecord.objects.filter(pk=alfa_dump[0].pk).update(status="failed", error="fallo de prueba")
    elif case == "json edited":
        content = b'[{"model": "users.user", "pk": 1, "fields": {"email": "x@x.com", "role": "clinic_admin"}}]'
    else:
        content = HOSTILE_SQL
    client = committed["alfa"].admin_client()  # logging in updates last_login: before the snapshot
    before = world()

    response = upload(client, "backup-sql-alfa-2025-01-01-000000.sql", content)

    assert response.status_code == 400
    assert "no corresponde a ningún backup de esta clínica" in response.json()["error"]
    assert world() == before
    assert not PWNED.exists()
    assert roles() == []


def test_one_byte_changed_in_the_clinics_own_backup_is_refused(committed, alfa_dump):
    client = committed["alfa"].admin_client()
    before = world()
    response = upload(client, alfa_dump[0].file_name, flipped(alfa_dump[1]))
    assert response.status_code == 400
    assert world() == before


def test_restoring_a_failed_backup_by_id_is_refused(committed, alfa_dump):
    record = alfa_dump[0]
    with schema_context("alfa"):
        BackupRecord.objects.filter(pk=record.pk).update(status="failed", error="fallo de prueba")
    client = committed["alfa"].admin_client()
    before = world()
    response = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")
    assert response.status_code == 409
    assert "no está disponible" in response.json()["error"]
    assert world() == before


class CountingBody:
    """A request body that counts what the server reads of it."""

    def __init__(self, data: bytes):
        self._data = data
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self.bytes_read + size
        chunk = self._data[self.bytes_read : end]
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        end = self._data.find(b"\n", self.bytes_read)
        return self.read((end + 1 - self.bytes_read) if end >= 0 else size)


def test_an_oversized_upload_is_refused_from_its_declared_length(committed, settings, alfa_dump):
    """Refused before a byte of the body is read (the later size check of the parsed
    file would also answer 400, but only after reading the whole body)."""
    dump = alfa_dump[1]
    settings.MAX_RESTORE_UPLOAD_SIZE = 1024
    boundary = "frontera"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="grande.sql"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + dump[:4096]
        + f"\r\n--{boundary}--\r\n".encode()
    )
    stream = CountingBody(body)
    client = committed["alfa"].admin_client()
    before = world()
    response = client.generic(
        "POST",
        RESTORE_URL,
        content_type=f"multipart/form-data; boundary={boundary}",
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": stream},
    )
    assert response.status_code == 400
    assert "demasiado grande" in response.json()["error"]
    assert stream.bytes_read == 0
    assert world() == before


@pytest.mark.parametrize(
    ("data", "fmt"),
    [({}, "json"), ({"backup_id": "abc"}, "json"), ({"backup_id": -1}, "json"), ("no es json", "json")],
)
def test_malformed_restore_requests_get_400(committed, data, fmt):
    client = committed["alfa"].admin_client()
    before = world()
    if isinstance(data, str):
        response = client.post(RESTORE_URL, data, content_type="application/json")
    else:
        response = client.post(RESTORE_URL, data, format=fmt)
    assert response.status_code == 400
    assert world() == before


def test_another_clinics_backup_id_is_404_and_changes_nothing(committed):
    beta_records = [backup_create(clinic=committed["beta"].clinic, backup_type="manual") for _ in range(3)]
    only_in_beta = max(r.pk for r in beta_records)
    client = committed["alfa"].admin_client()
    before = world()
    response = client.post(RESTORE_URL, {"backup_id": only_in_beta}, format="json")
    assert response.status_code == 404
    assert world() == before


def test_restore_needs_a_clinic_admin(committed, alfa_dump):
    record = alfa_dump[0]
    alfa = committed["alfa"]
    assert alfa.client().post(RESTORE_URL, {"backup_id": record.pk}, format="json").status_code == 401
    staff = alfa.client()
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert staff.post(RESTORE_URL, {"backup_id": record.pk}, format="json").status_code == 403
