"""The ``s3`` backend against moto answering like Supabase's S3 endpoint (namespaced
error XML, its refusals), issue 13 items 5 and 11–15."""

from __future__ import annotations

import io
import random

import pytest

from apps.backups.checks import storage_public_check
from apps.backups.engine import crypto
from apps.backups.engine.pipeline import store_stream
from apps.backups.errors import StorageError
from apps.backups.storage import get_backup_storage
from tests.backups.storage.conftest import MAX_ATTEMPTS, use_s3
from tests.backups.storage.test_fake_supabase import no_such_upload_after_lost_complete
from tests.support.fault_proxy import s3_error_xml

MB = 1024 * 1024
PATH = "alfa/backup-sql-alfa-2025-01-01-000000.sql.zst"


@pytest.fixture
def s3(request, settings):
    backend = use_s3(settings, *request.getfixturevalue("s3_server"))
    backend.proxy.namespace_s3_errors = True  # as Supabase's S3 endpoint answers
    yield backend
    backend.proxy.reset()
    backend.proxy.namespace_s3_errors = False


# -- 11. error codes are read where the server puts them -----------------------------------------


def test_namespaced_errors_are_still_understood(s3, settings):
    storage = get_backup_storage()
    with pytest.raises(StorageError, match="no existe"):
        storage.read_bytes("alfa/no-existe.sql.zst")
    assert not storage.exists("alfa/no-existe.sql.zst")
    settings.BACKUP_S3_BUCKET = "bucket-mal-escrito"
    with pytest.raises(StorageError, match="'bucket-mal-escrito' no existe"):
        get_backup_storage().list("alfa/")


def test_a_retried_completion_whose_reply_was_lost_keeps_the_stored_object(s3):
    storage = get_backup_storage()
    data = random.Random(3).randbytes(11 * MB)  # parts of 5, 5 and 1 MB
    # create (1), three parts (2–4), complete (5): its reply lost, the retry gets NoSuchUpload.
    no_such_upload_after_lost_complete(s3.proxy, nth=5)
    storage.write_bytes(PATH, data)
    assert s3.proxy.faults == {}
    assert storage.read_bytes(PATH) == data
    assert s3.raw_keys() == [PATH]  # and no open upload


def test_no_such_upload_without_the_object_is_still_a_failure(s3):
    storage = get_backup_storage()
    s3.proxy.reply(404, s3_error_xml("NoSuchUpload", "The specified upload does not exist"), nth=4)
    with pytest.raises(StorageError, match="NoSuchUpload"):
        storage.write_bytes(PATH, random.Random(3).randbytes(6 * MB))  # create, 2 parts, complete (4)
    assert not storage.exists(PATH)


# -- 12. the size limit of Supabase's S3 endpoint ------------------------------------------------


def test_entity_too_large_names_the_object_and_what_raises_the_limit(s3):
    storage = get_backup_storage()
    s3.proxy.reply(413, s3_error_xml("EntityTooLarge", "The object exceeded the maximum allowed size"), nth=2)
    with pytest.raises(StorageError) as raised:
        storage.write_bytes(PATH, random.Random(3).randbytes(6 * MB))  # create (1), part 1 (2)
    message = str(raised.value)
    assert PATH in message and "EntityTooLarge" in message and "maximum allowed size" in message
    assert "cada parte" in message and "plan de pago" in message
    assert s3.raw_keys() == []  # the upload was aborted


def test_a_multipart_backup_past_the_global_upload_limit_is_refused_with_what_raises_it(s3):
    """The proxy applies the project's global limit as Supabase's S3 endpoint does: to the
    parts too (EntityTooLarge on the part that passes it), so multipart does not get around it."""
    s3.proxy.s3_upload_limit = 8 * MB
    with pytest.raises(StorageError) as raised:
        get_backup_storage().write_bytes(PATH, random.Random(3).randbytes(11 * MB))  # parts of 5, 5 and 1 MB
    message = str(raised.value)
    assert PATH in message and "(parte" not in message
    assert "EntityTooLarge" in message and "The object exceeded the maximum allowed size" in message
    assert "cada parte" in message and "plan de pago" in message
    assert s3.raw_keys() == []  # the upload was aborted


# -- 13. a storage failure while encrypting is a storage error -----------------------------------


def test_a_storage_failure_during_an_encrypted_backup_is_reported_as_storage(s3, age_key):
    storage = get_backup_storage()
    s3.proxy.fail("503", nth=2, times=MAX_ATTEMPTS)  # the first part, for its whole budget
    source = io.BytesIO(random.Random(5).randbytes(7 * MB))  # incompressible: parts fill up
    with pytest.raises(StorageError) as raised:
        store_stream(source=source, storage=storage, path=PATH, recipients=crypto.recipients(), level=1)
    assert str(raised.value).startswith("S3 no respondió")
    assert "cifrar" not in str(raised.value)
    assert s3.raw_keys() == []


# -- 15. the region is named -----------------------------------------------------------------------


def test_a_wrong_region_is_named(s3, settings):
    settings.BACKUP_S3_REGION = "eu-west-3"
    body = s3_error_xml(
        "AuthorizationHeaderMalformed", "The authorization header is malformed; the region 'eu-west-3' is wrong"
    )
    s3.proxy.reply(400, body, nth=1)
    with pytest.raises(StorageError) as raised:
        get_backup_storage().list("alfa/")
    message = str(raised.value)
    assert "BACKUP_S3_REGION='eu-west-3'" in message and "región" in message


def test_a_refused_signature_also_points_at_the_region(s3, settings):
    settings.BACKUP_S3_SECRET_ACCESS_KEY = "clave-equivocada"
    before = s3.proxy.requests_seen
    with pytest.raises(StorageError) as raised:
        get_backup_storage().list("alfa/")
    assert s3.proxy.requests_seen - before == 1  # a refusal is not retried
    message = str(raised.value)
    assert "SignatureDoesNotMatch" in message and "BACKUP_S3_REGION" in message and "us-east-1" in message


# -- 5. a public S3 bucket is reported -------------------------------------------------------------


@pytest.mark.parametrize("how", ["acl", "policy"])
def test_a_public_s3_bucket_is_a_warning_in_check(s3, s3_server, how):
    import json

    server, _ = s3_server
    bucket = s3.settings.BACKUP_S3_BUCKET
    assert storage_public_check(None) == []
    if how == "acl":
        server.client().put_bucket_acl(Bucket=bucket, ACL="public-read")
    else:
        statement = {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    messages = storage_public_check(None)
    assert [message.id for message in messages] == ["backups.W002"]
    assert ("ACL" if how == "acl" else "política") in messages[0].msg
