"""Operator commands when the storage refuses or misleads (issue 13, items 3, 4, 8, 9):
one clear line and a non-zero exit, nothing reported as done that was not."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from tests.backups.scheduling.test_retention import make_backup
from tests.backups.storage.conftest import use_supabase
from tests.support.fake_supabase import ANON_KEY


@pytest.fixture
def supabase(request, settings):
    return use_supabase(settings, *request.getfixturevalue("supabase_server"))


@pytest.mark.parametrize("wrong", ["anon key", "missing bucket"])
def test_cleanup_never_reports_deleted_what_stays(committed, supabase, settings, capsys, wrong):
    now = timezone.now()
    old = make_backup("alfa", now - timedelta(days=60))
    make_backup("alfa", now - timedelta(days=1))  # the newest: always kept
    stored = supabase.raw_keys()
    assert len(stored) == 4
    if wrong == "anon key":
        settings.SUPABASE_KEY = ANON_KEY
    else:
        settings.SUPABASE_BUCKET_NAME = "bucket-mal-escrito"
    with pytest.raises(CommandError, match="no se pudieron borrar"):
        call_command("cleanup_old_backups")
    captured = capsys.readouterr()
    assert "Borrado" not in captured.out
    assert "service_role" in captured.err if wrong == "anon key" else "bucket-mal-escrito" in captured.err
    with schema_context("alfa"):
        assert BackupRecord.objects.filter(pk=old.pk).exists()
    assert supabase.raw_keys() == stored


def test_cleanup_after_the_key_was_revoked_mid_process_deletes_no_record(committed, supabase, key_revoke, capsys):
    """The backend passed its key check (the backups below were written with it), then
    the key lost its rights: every delete answers 200 [] and the objects stay."""
    from tests.support.fake_supabase import SERVICE_ROLE_KEY

    now = timezone.now()
    old = make_backup("alfa", now - timedelta(days=200))  # past weekly retention
    make_backup("alfa", now - timedelta(days=1))  # the newest: always kept
    stored = supabase.raw_keys()
    assert len(stored) == 4
    key_revoke(SERVICE_ROLE_KEY)
    with pytest.raises(CommandError, match="no se pudieron borrar"):
        call_command("cleanup_old_backups")
    captured = capsys.readouterr()
    assert "Borrado" not in captured.out
    assert "SUPABASE_KEY" in captured.err
    with schema_context("alfa"):
        assert BackupRecord.objects.filter(pk=old.pk).exists()
    assert supabase.raw_keys() == stored


def test_recovery_listing_with_a_mistyped_bucket_names_the_bucket(committed, supabase, settings):
    make_backup("alfa", timezone.now() - timedelta(days=1))
    settings.SUPABASE_BUCKET_NAME = "bucket-mal-escrito"
    with pytest.raises(CommandError) as raised:
        call_command("restore_clinic_from_storage", "alfa", "--list")
    assert "bucket-mal-escrito" in str(raised.value) and "No hay backups" not in str(raised.value)


@pytest.mark.parametrize("command", ["restore_drill", "rebuild_backup_history"])
def test_drill_and_history_rebuild_fail_with_one_line_on_storage_errors(committed, supabase, settings, capsys, command):
    settings.SUPABASE_KEY = ANON_KEY
    with pytest.raises(CommandError):
        call_command(command, "alfa")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if command == "restore_drill":
        assert err.count("\n") == 1 and "alfa" in err and "SUPABASE_KEY" in err


def test_cleanup_lists_old_temporaries_dry_run_too(committed, settings, capsys):
    root = settings.BACKUP_LOCAL_ROOT
    folder = root / "alfa"
    folder.mkdir(parents=True)
    old, fresh = folder / ".tmp-0123abcd-backup-sql-alfa.sql.zst", folder / ".tmp-4567-backup-sql-alfa.sql.zst"
    old.write_bytes(b"a medias")
    fresh.write_bytes(b"escribiendose")
    long_ago = (timezone.now() - timedelta(minutes=settings.BACKUP_STALE_AFTER_MINUTES + 5)).timestamp()
    os.utime(old, (long_ago, long_ago))

    call_command("cleanup_old_backups", "--dry-run")
    out = capsys.readouterr().out
    assert f"Se borraría: alfa/{old.name} (temporal de una escritura interrumpida)" in out
    assert fresh.name not in out
    assert old.exists()

    call_command("cleanup_old_backups")
    out = capsys.readouterr().out
    assert f"Borrado: alfa/{old.name}" in out
    assert not old.exists() and fresh.exists()


def test_an_upload_left_open_by_a_failed_backup_is_aborted_at_once_a_running_ones_is_not(
    committed, request, settings, capsys
):
    """The failure path's abort failed (storage down) or the process died after the
    record was marked failed: that upload is provably abandoned, whatever its age."""
    from tests.backups.storage.conftest import use_s3

    s3 = use_s3(settings, *request.getfixturevalue("s3_server"))
    storage = s3.storage()
    now = timezone.now()
    failed = make_backup("alfa", now - timedelta(minutes=5), status="failed")
    running = make_backup("alfa", now - timedelta(minutes=4), status="running")
    with schema_context("alfa"):
        BackupRecord.objects.filter(pk=failed.pk).update(file_path="alfa/fallido.sql.zst")
        BackupRecord.objects.filter(pk=running.pk).update(file_path="alfa/en-curso.sql.zst")
    writers = []
    for path in ("alfa/fallido.sql.zst", "alfa/en-curso.sql.zst"):
        writer = storage.open_write(path)
        writer.__enter__().write(b"x" * (6 * 1024 * 1024))  # a multipart upload is open
        writers.append(writer)
    assert s3.raw_keys() == ["(subida abierta) alfa/en-curso.sql.zst", "(subida abierta) alfa/fallido.sql.zst"]

    call_command("cleanup_old_backups", "--dry-run")
    assert "Se borraría: alfa/fallido.sql.zst (subida multiparte abierta)" in capsys.readouterr().out
    call_command("cleanup_old_backups")
    out = capsys.readouterr().out
    assert "alfa/fallido.sql.zst (subida multiparte abierta)" in out and "en-curso" not in out
    assert s3.raw_keys() == ["(subida abierta) alfa/en-curso.sql.zst"]
    for writer in writers:
        writer.__exit__(RuntimeError, RuntimeError("fin"), None)


def test_cleanup_lists_and_removes_old_supabase_temporaries_dry_run_too(
    committed, supabase, supabase_server, settings, capsys
):
    """Item 9 against the Supabase stand-in: the hidden ``.tmp-`` objects of interrupted
    writes are listed by --dry-run and by the real run: old ones, and at any age those of
    a backup already marked failed (its move failed and so did the delete of its temporary)."""
    import uuid

    server, _ = supabase_server
    bucket = settings.SUPABASE_BUCKET_NAME
    storage = supabase.storage()
    failed = make_backup("alfa", timezone.now() - timedelta(minutes=5), status="failed")
    with schema_context("alfa"):
        BackupRecord.objects.filter(pk=failed.pk).update(file_path="alfa/fallido.sql.zst")
    old = f"alfa/.tmp-{uuid.uuid4().hex}-backup-sql-alfa-2025-01-01-000000.sql.zst"
    fresh = f"alfa/.tmp-{uuid.uuid4().hex}-backup-sql-alfa-2025-01-02-000000.sql.zst"
    of_failed = f"alfa/.tmp-{uuid.uuid4().hex}-fallido.sql.zst"
    for path in (old, fresh, of_failed):
        storage.files.upload(path, b"a medias", {"content-type": "application/octet-stream"})
    long_ago = (timezone.now() - timedelta(minutes=settings.BACKUP_STALE_AFTER_MINUTES + 5)).timestamp()
    os.utime(server.root / bucket / old, (long_ago, long_ago))

    call_command("cleanup_old_backups", "--dry-run")
    out = capsys.readouterr().out
    for path in (old, of_failed):
        assert f"Se borraría: {path} (temporal de una escritura interrumpida)" in out
    assert fresh not in out
    assert supabase.raw_keys() == sorted([old, fresh, of_failed])

    call_command("cleanup_old_backups")
    out = capsys.readouterr().out
    for path in (old, of_failed):
        assert f"Borrado: {path} (temporal de una escritura interrumpida)" in out
    assert supabase.raw_keys() == [fresh]


@pytest.mark.parametrize("command", ["restore_drill", "rebuild_backup_history"])
def test_drill_and_history_rebuild_as_processes_print_one_line_and_exit_non_zero(
    committed, supabase, tmp_path, command
):
    """Item 8 as an operator runs them (``manage.py``): a storage refusal is one clear
    line on stderr, no traceback, and a failing exit code."""
    import subprocess
    import sys

    from django.conf import settings as django_settings

    from tests.support.processes import subprocess_env

    env = subprocess_env(tmp_path) | supabase.env | {"SUPABASE_KEY": ANON_KEY}
    finished = subprocess.run(
        [sys.executable, "manage.py", command, "alfa"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert finished.returncode != 0, finished.stdout + finished.stderr
    assert "Traceback" not in finished.stderr
    # Django's system checks speak first (backups.W003: the key cannot check the bucket); then the command.
    check_lines = ("System check identified", "WARNINGS:", "?: (backups.")
    lines = [line for line in finished.stderr.splitlines() if line.strip() and not line.startswith(check_lines)]
    assert any("SUPABASE_KEY" in line and "service_role" in line for line in lines), finished.stderr
    assert len(lines) == (2 if command == "restore_drill" else 1), finished.stderr  # the drill adds its total
    assert ANON_KEY not in finished.stdout + finished.stderr
