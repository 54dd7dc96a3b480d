"""The Supabase stand-in answers as the real server does: one test per row of
``../shared/facts/supabase-storage.md`` (the S3 endpoint's rows are at the end:
moto behind the fault proxy's rewriting step).

These talk to the stand-in with the official client (``storage3``) and plain
httpx, not through our backend: they pin down the protocol the backend must cope with.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from storage3.exceptions import StorageApiError

from tests.support.fake_supabase import ANON_KEY, FOREIGN_SERVICE_ROLE_KEY, SERVICE_ROLE_KEY, FakeSupabaseStorage

KB = 1024
MB = 1024 * KB


@pytest.fixture
def stand_in(supabase_server):
    server, _proxy = supabase_server
    bucket = f"hechos-{uuid.uuid4().hex[:10]}"
    server.bucket_create(bucket)
    return server, bucket


def files(server, bucket: str, key: str = SERVICE_ROLE_KEY, *, url: str | None = None):
    from supabase import ClientOptions, create_client

    client = create_client(url or server.url, key, options=ClientOptions(httpx_client=httpx.Client(timeout=10)))
    return client.storage.from_(bucket)


def raw(server, method: str, route: str, key: str | None = SERVICE_ROLE_KEY, *, prefix="/storage/v1", **kwargs):
    headers = {"apikey": key, "Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{server.url}{prefix}/{route}", headers=headers, timeout=10, **kwargs)


def api_error(call) -> StorageApiError:
    with pytest.raises(StorageApiError) as raised:
        call()
    return raised.value


# -- Addressing -----------------------------------------------------------------------------------


def test_routes_are_served_with_and_without_the_storage_v1_prefix(stand_in):
    server, bucket = stand_in
    for prefix in ("/storage/v1", ""):
        response = raw(server, "GET", f"bucket/{bucket}", prefix=prefix)
        assert response.status_code == 200 and response.json()["name"] == bucket
    assert str(files(server, bucket)._base_url).endswith("/storage/v1/")  # what the client builds


def test_the_backend_addresses_a_hosted_project_under_storage_v1():
    """The backend must work with a real ``https://<ref>.supabase.co``: its requests
    (the client's and its own raw ones) go to ``…/storage/v1/…``."""
    from apps.backups.storage.supabase import SupabaseBackupStorage

    storage = SupabaseBackupStorage(url="https://abcdefghij.supabase.co", key=SERVICE_ROLE_KEY, bucket="backups")
    assert storage.storage_url == "https://abcdefghij.supabase.co/storage/v1"
    assert str(storage.files._base_url) == "https://abcdefghij.supabase.co/storage/v1/"


# -- Keys and errors ------------------------------------------------------------------------------


def test_errors_are_http_400_with_the_real_status_as_a_string_in_the_body(stand_in):
    server, bucket = stand_in
    response = raw(server, "GET", f"object/authenticated/{bucket}/no/existe")
    assert response.status_code == 400
    assert response.json() == {"statusCode": "404", "error": "not_found", "message": "Object not found"}


def test_wrong_secret_upload_is_403(stand_in, tmp_path):
    server, bucket = stand_in
    error = api_error(lambda: files(server, bucket, FOREIGN_SERVICE_ROLE_KEY).upload("a/x", b"datos"))
    assert error.status == "403"
    assert server.stored_keys(bucket) == []


def test_wrong_secret_on_info_and_get_reads_as_a_missing_bucket(stand_in):
    server, bucket = stand_in
    files(server, bucket).upload("a/x", b"datos")
    for route in (f"object/info/{bucket}/a/x", f"object/{bucket}/a/x"):
        response = raw(server, "GET", route, FOREIGN_SERVICE_ROLE_KEY)
        assert response.status_code == 400
        assert response.json()["statusCode"] == "404" and response.json()["error"] == "Bucket not found"


def test_wrong_secret_on_authenticated_routes_is_403_signature_verification_failed(stand_in):
    server, bucket = stand_in
    files(server, bucket).upload("a/x", b"datos")
    for route in (f"object/info/authenticated/{bucket}/a/x", f"object/authenticated/{bucket}/a/x"):
        body = raw(server, "GET", route, FOREIGN_SERVICE_ROLE_KEY).json()
        assert body["statusCode"] == "403" and body["message"] == "signature verification failed"


def test_anon_key_on_a_private_bucket_lists_empty_reads_404_deletes_nothing(stand_in):
    server, bucket = stand_in
    files(server, bucket).upload("a/x", b"datos")
    anon = files(server, bucket, ANON_KEY)
    assert anon.list("a") == []
    assert api_error(lambda: anon.download("a/x")).status == "404"
    assert anon.remove(["a/x"]) == []
    assert server.stored_keys(bucket) == ["a/x"]


# -- Buckets --------------------------------------------------------------------------------------


def test_get_bucket_says_public_and_file_size_limit_and_404_when_missing(supabase_server):
    server, _ = supabase_server
    name = f"publico-{uuid.uuid4().hex[:8]}"
    server.bucket_create(name, public=True, file_size_limit=5 * KB)
    body = raw(server, "GET", f"bucket/{name}").json()
    assert body["public"] is True and body["file_size_limit"] == 5 * KB
    missing = raw(server, "GET", "bucket/no-existe-xyz")
    assert missing.status_code == 400 and missing.json()["statusCode"] == "404"


def test_a_missing_bucket_lists_like_an_empty_one(supabase_server):
    server, _ = supabase_server
    assert files(server, "no-existe-xyz").list("a") == []


def test_objects_of_a_public_bucket_are_readable_by_anyone(supabase_server):
    server, _ = supabase_server
    name = f"publico-{uuid.uuid4().hex[:8]}"
    server.bucket_create(name, public=True)
    files(server, name).upload("a/x", b"datos")
    assert raw(server, "GET", f"object/public/{name}/a/x", key=None).content == b"datos"
    private = raw(server, "GET", f"object/public/{name.replace('publico', 'otro')}/a/x", key=None)
    assert private.json()["statusCode"] == "404"


# -- Objects --------------------------------------------------------------------------------------


def test_dot_names_are_accepted_for_upload_move_info_download_delete(stand_in):
    server, bucket = stand_in
    client = files(server, bucket)
    client.upload("a/.tmp-1-x", b"datos")
    assert client.info("a/.tmp-1-x")["size"] == 5
    assert client.download("a/.tmp-1-x") == b"datos"
    client.move("a/.tmp-1-x", "a/.tmp-2-x")
    assert [item["name"] for item in client.remove(["a/.tmp-2-x"])] == ["a/.tmp-2-x"]
    assert server.stored_keys(bucket) == []


def test_delete_answers_what_it_deleted_and_200_empty_when_nothing(stand_in):
    server, bucket = stand_in
    client = files(server, bucket)
    client.upload("a/x", b"datos")
    assert [item["name"] for item in client.remove(["a/x", "a/nunca"])] == ["a/x"]
    assert client.remove(["a/x"]) == []  # no such object
    assert files(server, bucket, ANON_KEY).remove(["a/x"]) == []  # a key without rights
    assert files(server, "no-existe-xyz").remove(["a/x"]) == []  # a missing bucket


def test_move_onto_an_existing_name_is_409_and_a_lost_reply_may_have_moved(stand_in, supabase_server):
    server, bucket = stand_in
    client = files(server, bucket)
    client.upload("a/uno", b"1")
    client.upload("a/dos", b"2")
    assert api_error(lambda: client.move("a/uno", "a/dos")).status == "409"
    # Through the proxy, the reply of a move that happened is lost: source gone, destination there.
    _, proxy = supabase_server
    proxy.fail("lost-reply", nth=1)
    with pytest.raises(httpx.TransportError):
        files(server, bucket, url=proxy.url).move("a/uno", "a/tres")
    assert server.stored_keys(bucket) == ["a/dos", "a/tres"]


def test_uploads_over_the_bucket_or_project_limit_are_413(supabase_server, tmp_path):
    server, _ = supabase_server
    name = f"limitado-{uuid.uuid4().hex[:8]}"
    server.bucket_create(name, file_size_limit=100 * KB)
    error = api_error(lambda: files(server, name).upload("a/x", b"x" * (200 * KB)))
    assert (error.status, error.message) == ("413", "The object exceeded the maximum allowed size")
    small_project = FakeSupabaseStorage(tmp_path / "proyecto", upload_limit=100 * KB).start()
    try:
        small_project.bucket_create("backups")  # no limit of its own: the project's applies
        error = api_error(lambda: files(small_project, "backups").upload("a/x", b"x" * (200 * KB)))
        assert error.status == "413"
        assert small_project.stored_keys("backups") == []
    finally:
        small_project.stop()


def test_cache_control_option_is_stored_as_max_age_of_the_value(stand_in):
    server, bucket = stand_in
    files(server, bucket).upload("a/x", b"datos", {"cache-control": "no-store"})
    assert server.metadata(bucket, "a/x")["cacheControl"] == "max-age=no-store"
    info = raw(server, "GET", f"object/info/authenticated/{bucket}/a/x").json()
    assert info["cache_control"] == "max-age=no-store"


def test_the_clients_download_returns_the_whole_object_as_bytes(stand_in):
    server, bucket = stand_in
    files(server, bucket).upload("a/x", b"d" * 300 * KB)
    assert files(server, bucket).download("a/x") == b"d" * 300 * KB


# -- Availability ---------------------------------------------------------------------------------


def test_a_restart_finishes_the_requests_in_flight(tmp_path):
    """On SIGTERM the real server finishes what it is serving, then stops: a download
    under way when the stand-in restarts is read to its end."""
    server = FakeSupabaseStorage(tmp_path / "en-curso").start()
    try:
        server.bucket_create("backups")
        data = bytes(range(256)) * (128 * KB)  # 32 MB: far more than the sockets buffer
        files(server, "backups").upload("a/x", data)
        with httpx.stream(
            "GET", f"{server.url}/storage/v1/object/authenticated/backups/a/x", headers=_service_headers(), timeout=10
        ) as response:
            chunks = response.iter_bytes(64 * KB)
            received = [next(chunks)]
            server.restart(down_seconds=1.0, wait=False)
            received += list(chunks)
        assert b"".join(received) == data
        server.restarted.wait(10)
    finally:
        server.stop()


def _service_headers() -> dict[str, str]:
    return {"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"}


def test_a_restart_fails_requests_made_while_it_is_down(tmp_path):
    """The stand-in can stop and come back on the same port (a restart); requests
    made meanwhile are refused, the same request after it works."""
    server = FakeSupabaseStorage(tmp_path / "reinicio").start()
    try:
        server.bucket_create("backups")
        files(server, "backups").upload("a/x", b"datos")
        server.restart(down_seconds=1.0, wait=False)
        time.sleep(0.2)
        with pytest.raises(httpx.ConnectError):
            files(server, "backups").download("a/x")
        server.restarted.wait(10)
        assert files(server, "backups").download("a/x") == b"datos"
    finally:
        server.stop()


# -- The S3-compatible endpoint (moto behind the fault proxy) ------------------------------------


@pytest.fixture
def s3_namespaced(s3_server):
    server, proxy = s3_server
    bucket = f"hechos-{uuid.uuid4().hex[:10]}"
    server.client().create_bucket(Bucket=bucket)
    proxy.namespace_s3_errors = True
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    yield client, bucket, proxy
    proxy.reset()
    proxy.namespace_s3_errors = False


def test_s3_error_xml_is_namespaced_and_botocore_leaves_error_code_empty(s3_namespaced):
    from botocore.exceptions import ClientError

    client, bucket, _ = s3_namespaced
    with pytest.raises(ClientError) as raised:
        client.get_object(Bucket=bucket, Key="no/existe")
    assert not raised.value.response["Error"].get("Code")
    assert raised.value.response["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as raised:
        client.list_objects_v2(Bucket="no-existe-xyz")
    assert raised.value.response["Code"] == "NoSuchBucket"


def no_such_upload_after_lost_complete(proxy, *, nth: int) -> None:
    """The nth request (a CompleteMultipartUpload) is done but its reply lost; the retry
    gets NoSuchUpload, as from Supabase's S3 endpoint (moto completes it again instead)."""
    from tests.support.fault_proxy import s3_error_xml

    proxy.fail("lost-reply", nth=nth)
    proxy.reply(404, s3_error_xml("NoSuchUpload", "The specified upload does not exist"), nth=nth + 1)


def test_s3_retried_complete_after_a_lost_reply_gets_no_such_upload(s3_namespaced):
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    client, bucket, proxy = s3_namespaced
    upload = client.create_multipart_upload(Bucket=bucket, Key="a/grande")["UploadId"]
    etag = client.upload_part(Bucket=bucket, Key="a/grande", UploadId=upload, PartNumber=1, Body=b"x" * 100)["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    no_such_upload_after_lost_complete(proxy, nth=1)
    with pytest.raises((ConnectionError, HTTPClientError)):
        client.complete_multipart_upload(Bucket=bucket, Key="a/grande", UploadId=upload, MultipartUpload=parts)
    with pytest.raises(ClientError) as raised:
        client.complete_multipart_upload(Bucket=bucket, Key="a/grande", UploadId=upload, MultipartUpload=parts)
    assert raised.value.response["Code"] == "NoSuchUpload"
    assert client.head_object(Bucket=bucket, Key="a/grande")["ContentLength"] == 100  # it was completed


def test_s3_global_upload_limit_refuses_a_put_and_the_part_that_passes_it(s3_namespaced):
    """moto has no upload limit: the proxy applies the project's global one as Supabase's
    S3 endpoint does, to a PutObject and to every part of a multipart upload."""
    from botocore.exceptions import ClientError

    client, bucket, proxy = s3_namespaced
    proxy.s3_upload_limit = 6 * MB
    client.put_object(Bucket=bucket, Key="a/cabe", Body=b"x" * (6 * MB))
    with pytest.raises(ClientError) as raised:
        client.put_object(Bucket=bucket, Key="a/x", Body=b"x" * (6 * MB + 1))
    assert raised.value.response["Code"] == "EntityTooLarge"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    upload = client.create_multipart_upload(Bucket=bucket, Key="a/grande")["UploadId"]
    for _attempt in range(2):  # a part sent again counts once
        client.upload_part(Bucket=bucket, Key="a/grande", UploadId=upload, PartNumber=1, Body=b"x" * (5 * MB))
    with pytest.raises(ClientError) as raised:  # 10 MB in all: past the limit
        client.upload_part(Bucket=bucket, Key="a/grande", UploadId=upload, PartNumber=2, Body=b"x" * (5 * MB))
    assert raised.value.response["Code"] == "EntityTooLarge"
    assert [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["a/cabe"]


def test_lost_and_late_replies_reach_the_server(stand_in, supabase_server):
    """The proxy's reply faults forward the request: the server did the work."""
    server, bucket = stand_in
    _, proxy = supabase_server
    before = len(proxy.forwarded)
    proxy.fail("late-reply", nth=1, seconds=2)
    slow = files(server, bucket, url=proxy.url)
    slow._client.timeout = httpx.Timeout(0.5)
    with pytest.raises(httpx.TimeoutException):
        slow.upload("a/tarde", b"datos")
    assert server.stored_keys(bucket) == ["a/tarde"]
    assert len(proxy.forwarded) == before + 1
    proxy.fail("late-reply", nth=1, seconds=0.3)  # under the timeout: just a slow server
    files(server, bucket, url=proxy.url).upload("a/lento", b"datos")
    assert server.stored_keys(bucket) == ["a/lento", "a/tarde"]


def test_a_revoked_key_is_answered_as_the_anon_key(stand_in, key_revoke):
    server, bucket = stand_in
    files(server, bucket).upload("a/objeto", b"datos")
    key_revoke(SERVICE_ROLE_KEY)
    for key in (SERVICE_ROLE_KEY, ANON_KEY):
        assert raw(server, "DELETE", f"object/{bucket}", key, json={"prefixes": ["a/objeto"]}).json() == []
        assert raw(server, "GET", f"bucket/{bucket}", key).json()["statusCode"] == "404"
    assert server.stored_keys(bucket) == ["a/objeto"]
