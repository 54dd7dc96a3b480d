"""The ``supabase`` backend against the stand-in answering as the real server
(issue 13, items 1–7 and 10): lost replies, keys, deletes, buckets, limits."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.management import call_command

from apps.backups.checks import storage_public_check
from apps.backups.errors import StorageError
from apps.backups.storage import CHECK_TIMEOUT_SECONDS, get_backup_storage
from apps.backups.storage.retry import RetryPolicy
from apps.backups.storage.supabase import SupabaseBackupStorage
from tests.backups.storage.conftest import SHORT_TIMEOUT, expect_timeouts, use_supabase
from tests.support.fake_supabase import ANON_KEY, FOREIGN_SERVICE_ROLE_KEY, SERVICE_ROLE_KEY, FakeSupabaseStorage

KB = 1024
PATH = "alfa/backup-sql-alfa-2025-01-01-000000.sql.zst"


@pytest.fixture
def supabase(request, settings):
    return use_supabase(settings, *request.getfixturevalue("supabase_server"))


# -- 1. a move whose reply is lost ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lost-reply", "late-reply"])
def test_a_move_whose_reply_is_lost_is_a_success_not_a_destroyed_backup(supabase, settings, kind):
    expect_timeouts(settings)
    storage = get_backup_storage()
    storage.list("alfa/")  # key and bucket checked: the next write is upload (1) then move (2)
    supabase.proxy.fail(kind, nth=2, seconds=SHORT_TIMEOUT + 1)
    storage.write_bytes(PATH, b"copia buena")
    assert supabase.proxy.faults == {}
    assert storage.read_bytes(PATH) == b"copia buena"
    assert supabase.raw_keys() == [PATH]  # no .tmp- left behind


def test_a_failed_move_removes_its_temporary(supabase):
    storage = get_backup_storage()
    storage.list("alfa/")
    supabase.proxy.fail("503", nth=2, times=4)  # the move, for its whole budget
    with pytest.raises(StorageError, match="mover"):
        storage.write_bytes(PATH, b"datos")
    assert supabase.raw_keys() == []


# -- 2. a wrong key is named as such -------------------------------------------------------------


@pytest.mark.parametrize("key", [FOREIGN_SERVICE_ROLE_KEY, ANON_KEY, "sb_publishable_abc123"])
def test_a_wrong_key_is_reported_as_the_key_not_a_missing_bucket_or_object(supabase, settings, key, caplog):
    get_backup_storage().write_bytes(PATH, b"datos")
    settings.SUPABASE_KEY = key
    storage = get_backup_storage()
    for operation in (
        lambda: storage.read_bytes(PATH),
        lambda: storage.exists(PATH),
        lambda: storage.list("alfa/"),
        lambda: storage.delete(PATH),
    ):
        with pytest.raises(StorageError) as raised:
            operation()
        message = str(raised.value)
        assert "SUPABASE_KEY" in message and "service_role" in message
        assert "no existe" not in message
        assert key not in message + caplog.text
    assert supabase.raw_keys() == [PATH]


def test_a_rejected_key_costs_one_request(supabase, settings):
    settings.SUPABASE_KEY = FOREIGN_SERVICE_ROLE_KEY
    before = supabase.proxy.requests_seen
    with pytest.raises(StorageError, match="SUPABASE_KEY"):
        get_backup_storage().list("alfa/")
    assert supabase.proxy.requests_seen - before == 1


# -- 3. deletes are checked ----------------------------------------------------------------------


def test_deletes_with_an_anon_key_or_a_missing_bucket_are_errors_and_nothing_passes_for_deleted(supabase, settings):
    storage = get_backup_storage()
    storage.write_bytes(PATH, b"datos")
    settings.SUPABASE_KEY = ANON_KEY  # the server would answer 200 [] and delete nothing
    with pytest.raises(StorageError, match="service_role"):
        get_backup_storage().delete(PATH)
    settings.SUPABASE_KEY = SERVICE_ROLE_KEY
    settings.SUPABASE_BUCKET_NAME = "bucket-mal-escrito"  # likewise 200 []
    with pytest.raises(StorageError, match="bucket-mal-escrito"):
        get_backup_storage().delete(PATH)
    assert supabase.raw_keys() == [PATH]


def test_a_delete_that_deleted_nothing_after_the_key_check_passed_is_an_error(supabase, key_revoke):
    """The once-per-process key check passed, then the key lost its rights on the
    server: the delete answers 200 [] and the object stays. Only the returned list
    (and info) can tell; delete must not pass for success."""
    storage = get_backup_storage()
    storage.write_bytes(PATH, b"datos")  # key and bucket checked: cached for this process
    key_revoke(SERVICE_ROLE_KEY)  # the server now answers it as the anon key
    with pytest.raises(StorageError) as raised:
        storage.delete(PATH)
    assert "SUPABASE_KEY" in str(raised.value) and "service_role" in str(raised.value)
    assert supabase.raw_keys() == [PATH]


# -- 4. a missing bucket does not list like an empty one ----------------------------------------


def test_a_missing_bucket_is_named_not_listed_as_empty(supabase, settings):
    settings.SUPABASE_BUCKET_NAME = "bucket-mal-escrito"
    with pytest.raises(StorageError, match=r"'bucket-mal-escrito' no existe.*SUPABASE_BUCKET_NAME"):
        get_backup_storage().list("alfa/")


# -- 5. a public bucket is refused and reported --------------------------------------------------


def test_a_public_bucket_is_refused_for_writes_and_reported_by_check(supabase_server, settings):
    server, proxy = supabase_server
    bucket = f"publico-{uuid.uuid4().hex[:8]}"
    server.bucket_create(bucket, public=True)
    use_supabase(settings, server, proxy)
    settings.SUPABASE_BUCKET_NAME = bucket
    with pytest.raises(StorageError, match="es público"):
        get_backup_storage().write_bytes(PATH, b"datos")
    assert server.stored_keys(bucket) == []
    messages = storage_public_check(None)
    assert [(message.id, "es público" in message.msg) for message in messages] == [("backups.E002", True)]


def test_check_is_quiet_for_a_private_bucket_and_warns_when_unreachable(supabase, settings):
    assert storage_public_check(None) == []
    settings.SUPABASE_BUCKET_NAME = "no-existe-en-absoluto"
    assert [message.id for message in storage_public_check(None)] == ["backups.W003"]


def test_check_waits_its_own_short_time_not_the_backups_time_out(supabase, settings):
    # Django runs the check before most commands: a storage outage must not hold
    # every `manage.py migrate` for BACKUP_STORAGE_TIMEOUT (60 s) times the retries.
    settings.BACKUP_STORAGE_TIMEOUT = 60
    supabase.proxy.fail("late-reply", seconds=CHECK_TIMEOUT_SECONDS + 3)
    messages = storage_public_check(None)
    assert [message.id for message in messages] == ["backups.W003"]
    assert "no respondió" in messages[0].msg and "ReadTimeout" in messages[0].msg


def test_manage_py_check_runs_the_public_bucket_check(supabase_server, settings):
    from django.core.management.base import SystemCheckError

    server, proxy = supabase_server
    bucket = f"publico-{uuid.uuid4().hex[:8]}"
    server.bucket_create(bucket, public=True)
    use_supabase(settings, server, proxy)
    settings.SUPABASE_BUCKET_NAME = bucket
    with pytest.raises(SystemCheckError, match=r"backups\.E002"):
        call_command("check")


# -- 6. size limits are explained ---------------------------------------------------------------


def test_a_bucket_size_limit_refusal_names_the_final_object_and_the_limits(supabase_server, settings):
    server, proxy = supabase_server
    bucket = f"limitado-{uuid.uuid4().hex[:8]}"
    server.bucket_create(bucket, file_size_limit=100 * KB)
    use_supabase(settings, server, proxy)
    settings.SUPABASE_BUCKET_NAME = bucket
    with pytest.raises(StorageError) as raised:
        get_backup_storage().write_bytes(PATH, b"x" * (200 * KB))
    message = str(raised.value)
    assert PATH in message and ".tmp-" not in message
    assert "The object exceeded the maximum allowed size" in message  # the server's own words
    assert "file_size_limit: 100 KB" in message and "50 MB en el plan gratuito" in message
    assert "plan de pago" in message and "endpoint S3" in message
    assert server.stored_keys(bucket) == []


def test_the_project_upload_limit_refusal_is_explained_too(tmp_path):
    server = FakeSupabaseStorage(tmp_path / "proyecto", upload_limit=100 * KB).start()
    try:
        server.bucket_create("backups")
        storage = SupabaseBackupStorage(url=server.url, key=SERVICE_ROLE_KEY, bucket="backups")
        with pytest.raises(StorageError, match=r"sin límite propio.*plan de pago"):
            storage.write_bytes(PATH, b"x" * (200 * KB))
        assert server.stored_keys("backups") == []
    finally:
        server.stop()


# -- 7. Cache-Control -----------------------------------------------------------------------------


def test_the_stored_cache_control_is_a_valid_header(supabase, supabase_server):
    server, _ = supabase_server
    get_backup_storage().write_bytes(PATH, b"datos")
    assert re.fullmatch(r"max-age=\d+", server.metadata(supabase.settings.SUPABASE_BUCKET_NAME, PATH)["cacheControl"])


# -- 10. the retry budget outlasts a restart ------------------------------------------------------


def test_the_default_retry_budget_outlasts_a_server_restart():
    from django.conf import settings as django_settings

    from apps.backups.storage import retry_policy

    least, most = retry_policy().total_wait()
    assert django_settings.BACKUP_STORAGE_MAX_ATTEMPTS == RetryPolicy().max_attempts
    assert least >= 30  # a restart took 10–18 s; every request made meanwhile must survive it
    assert most <= 120  # still bounded


def test_a_call_made_during_a_restart_succeeds_within_the_budget_and_fails_with_a_short_one(tmp_path):
    server = FakeSupabaseStorage(tmp_path / "reinicio").start()
    try:
        server.bucket_create("backups")
        patient = SupabaseBackupStorage(
            url=server.url, key=SERVICE_ROLE_KEY, bucket="backups", retry=RetryPolicy(max_attempts=6, backoff_base=0.2)
        )
        patient.write_bytes(PATH, b"datos")
        server.restart(down_seconds=1.5, wait=False)
        assert patient.read_bytes(PATH) == b"datos"  # retried until the server was back
        server.restarted.wait(10)
        hasty = SupabaseBackupStorage(
            url=server.url, key=SERVICE_ROLE_KEY, bucket="backups", retry=RetryPolicy(max_attempts=2, backoff_base=0.05)
        )
        server.restart(down_seconds=1.5, wait=False)
        with pytest.raises(StorageError, match="tras 2 intentos"):
            hasty.read_bytes(PATH)
        server.restarted.wait(10)
    finally:
        server.stop()
