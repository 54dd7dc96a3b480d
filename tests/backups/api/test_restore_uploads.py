"""Uploaded files are not trusted: only this clinic's own backups are restored."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.services import backup_create, backup_open_plain
from tests.backups.restore.test_swap import RESTORE_URL, change_clinic_data, schemas
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
    assert response.status_code == 200, response.content
    assert table_hashes("alfa") == before
    with schema_context("alfa"):
        restore = BackupRestore.objects.get()
    assert restore.source == "upload" and restore.backup_id == record.pk
    assert restore.uploaded_file_name == record.file_name


def flipped(data: bytes) -> bytes:
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x20
    return bytes(changed)


HOSTILE_SQL = {
    "hand-written SQL": b"CREATE TABLE alfa.notas_falsas (id int); INSERT INTO alfa.notas_falsas VALUES (1);\n",
    "COPY TO PROGRAM": f"COPY (SELECT 1) TO PROGRAM 'touch {PWNED}';\n".encode(),
    "DROP SCHEMA of another clinic": b"DROP SCHEMA beta CASCADE;\n",
    "CREATE ROLE": b"CREATE ROLE intruso SUPERUSER LOGIN PASSWORD 'x';\n",
    "psql shell escape": f"\\! touch {PWNED}\n".encode(),
}


@pytest.mark.parametrize("case", [*HOSTILE_SQL, "another clinic's backup", "one byte changed", "json edited"])
def test_files_this_system_did_not_produce_for_this_clinic_are_refused(committed, alfa_dump, case):
    dump = alfa_dump[1]
    if case == "another clinic's backup":
        content = plain(backup_create(clinic=committed["beta"].clinic, backup_type="manual"))
    elif case == "one byte changed":
        content = flipped(dump)
    elif case == "json edited":
        content = b'[{"model": "users.user", "pk": 1, "fields": {"email": "x@x.com", "role": "clinic_admin"}}]'
    else:
        content = HOSTILE_SQL[case]
    client = committed["alfa"].admin_client()  # logging in updates last_login: before the snapshot
    before = world()

    response = upload(client, "backup-sql-alfa-2025-01-01-000000.sql", content)

    assert response.status_code == 400
    assert "no corresponde a ningún backup de esta clínica" in response.json()["error"]
    assert world() == before
    assert not PWNED.exists()


def test_an_oversized_upload_is_refused_from_its_declared_length(committed, settings, alfa_dump):
    dump = alfa_dump[1]
    settings.MAX_RESTORE_UPLOAD_SIZE = 1024
    client = committed["alfa"].admin_client()
    before = world()
    response = upload(client, "grande.sql", dump)
    assert response.status_code == 400
    assert "demasiado grande" in response.json()["error"]
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
