import hashlib
import os
import stat
from pathlib import Path

import pytest

from apps.backups.engine import crypto


def stored_files(root: Path) -> list[Path]:
    """Every file under the bucket folder, hidden temporaries included."""
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def stored_object_tamper(root: Path, record, *, at: float) -> None:
    """Flip one bit of a stored backup object, ``at`` (0–1) of the way through it."""
    stored = root / record.file_path
    data = bytearray(stored.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    stored.write_bytes(bytes(data))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def age_key(settings, tmp_path) -> Path:
    """A fresh age identity, configured for backups."""
    path = tmp_path / "keys" / "identity.txt"
    crypto.identity_file_create(path)
    settings.BACKUP_AGE_IDENTITY_FILE = str(path)
    return path


def write_script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text("#!/usr/bin/env bash\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def pg_client_wrap(settings, folder: Path, program: str, real: str, body: str) -> Path:
    """Make ``program`` (pg_dump, psql) the only PostgreSQL client backups find: a
    script that answers ``--version`` as the ``real`` binary does and otherwise runs ``body``."""
    script = write_script(folder, program, f'if [ "$1" = --version ]; then exec {real} --version; fi\n{body}')
    settings.BACKUP_PG_BIN_DIR = str(folder)
    return script


@pytest.fixture
def fake_pg_dump(settings, tmp_path, real_pg_dump):
    """``fake_pg_dump(body)``: pg_dump is now a script running ``body`` (see ``pg_client_wrap``)."""
    return lambda body: pg_client_wrap(settings, tmp_path / "bin", "pg_dump", real_pg_dump, body)


@pytest.fixture
def real_pg_dump() -> str:
    from django.db import connection

    from apps.backups.engine.pg_clients import find_client, server_major

    os.environ.setdefault("PGCONNECT_TIMEOUT", "5")
    return find_client("pg_dump", min_major=server_major(connection)).path


@pytest.fixture
def backed_up_and_changed(committed):
    """alfa backed up, then changed: (record, plain dump, hashes and schemas before any restore)."""
    from apps.backups.services import backup_create, backup_open_plain
    from tests.backups.restore.test_swap import change_clinic_data, schemas
    from tests.support.database import table_hashes

    record = backup_create(clinic=committed["alfa"].clinic, backup_type="manual")
    with backup_open_plain(record=record) as chunks:
        plain = b"".join(chunks)
    change_clinic_data("alfa")
    return record, plain, table_hashes("alfa"), schemas()
