"""A restore upload that finds the server's temporary folder full: a clear 507,
and the partial temporary file removed at once (a real full filesystem: a 1 MB
tmpfs, which needs root to mount)."""

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from apps.backups.models import BackupRestore
from tests.support.database import table_hashes
from tests.support.disks import small_tmpfs


@pytest.fixture
def full_disk(tmp_path):
    with small_tmpfs(tmp_path / "tmpfs") as folder:
        yield folder


def test_a_restore_upload_on_a_full_temporary_folder_answers_507_and_keeps_no_space(committed, settings, full_disk):
    settings.FILE_UPLOAD_TEMP_DIR = str(full_disk)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # larger uploads go to a temporary file
    alfa = committed["alfa"]
    client = alfa.admin_client()
    before = table_hashes("alfa")
    upload = SimpleUploadedFile("backup-sql-alfa-2025-11-25-140530.sql", os.urandom(3 * 1024 * 1024))

    response = client.post("/api/backups/restore/", {"file": upload}, format="multipart")

    assert response.status_code == 507
    assert "no tiene espacio" in response.json()["error"]
    assert list(full_disk.iterdir()) == []  # the partial temporary is gone now, not when the worker exits
    assert os.statvfs(full_disk).f_bfree == os.statvfs(full_disk).f_blocks
    assert table_hashes("alfa") == before
    with schema_context("alfa"):
        assert not BackupRestore.objects.exists()  # refused before any restore began
