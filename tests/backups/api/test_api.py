"""The manual-backup API: create, history, download — permissions and isolation."""

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context
from drf_spectacular.drainage import GENERATOR_STATS

from apps.backups.errors import IntegrityError
from apps.backups.models import BackupDownload, BackupRecord
from apps.backups.services import backup_create, backup_open_plain
from tests.backups.conftest import sha256_of, stored_files, stored_object_tamper

CREATE_URL = "/api/backups/create/"
HISTORY_URL = "/api/backups/history/"


def download_url(backup_id: int) -> str:
    return f"/api/backups/history/{backup_id}/download/"


def streamed(response) -> bytes:
    return b"".join(response.streaming_content)


def test_create_answers_201_with_the_guides_shape(committed, caplog):
    alfa = committed["alfa"]
    with caplog.at_level("INFO", logger="apps.backups"):
        response = alfa.admin_client().post(CREATE_URL)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["message"] == "Backup creado y subido a almacenamiento local exitosamente"
    info = body["backup_info"]
    assert set(info) >= {"id", "file_name", "file_size", "backup_type", "created_at", "created_by"}
    assert info["backup_type"] == "manual" and info["status"] == "succeeded"
    assert info["created_by"] == {"id": alfa.admin.pk, "email": "admin@alfa.com"}
    assert info["file_name"].startswith("backup-sql-alfa-") and info["file_name"].endswith(".sql")
    with schema_context("alfa"):
        record = BackupRecord.objects.get(pk=info["id"])
    assert record.created_by_id == alfa.admin.pk and record.file_size == info["file_size"] > 0
    assert f"Backup manual creado por admin@alfa.com (ID: {record.pk})" in caplog.text


def test_create_with_download_answers_with_the_sql_file(committed, settings):
    response = committed["alfa"].admin_client().post(CREATE_URL + "?download=true")
    assert response.status_code == 200
    body = streamed(response)
    with schema_context("alfa"):
        record = BackupRecord.objects.get()
        assert BackupDownload.objects.filter(backup=record).count() == 1
    assert response["Content-Type"] == "application/sql"
    assert response["Content-Disposition"] == f'attachment; filename="{record.file_name}"'
    assert sha256_of(body) == record.plain_sha256
    assert b"CREATE TABLE alfa.payment_system_payment" in body


def test_over_the_size_limit_answers_400_and_keeps_nothing(committed, settings):
    settings.MAX_BACKUP_SIZE = 10_000
    response = committed["alfa"].admin_client().post(CREATE_URL)
    assert response.status_code == 400
    assert response.json()["error"] == "Backup demasiado grande: supera el límite de 9.8 KB."
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()
    assert stored_files(settings.BACKUP_LOCAL_ROOT) == []


def test_history_lists_this_clinics_backups_newest_first(committed):
    alfa, beta = committed["alfa"], committed["beta"]
    older = backup_create(clinic=alfa.clinic, backup_type="automatic")
    newer = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    backup_create(clinic=beta.clinic, backup_type="manual")

    response = alfa.admin_client().get(HISTORY_URL)
    assert response.status_code == 200
    history = response.json()
    assert [item["id"] for item in history] == [newer.pk, older.pk]
    assert history[1]["created_by"] is None and history[1]["backup_type"] == "automatic"
    assert history[0]["created_by"]["email"] == "admin@alfa.com"
    assert all(item["file_name"].split("-")[2] == "alfa" for item in history)
    assert {item["status"] for item in history} == {"succeeded"}


def test_download_streams_the_verified_plain_file_and_records_who(committed, settings, age_key):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = alfa.admin_client()
    response = client.get(download_url(record.pk), REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="curl/8")

    assert response.status_code == 200
    body = streamed(response)
    assert int(response["Content-Length"]) == len(body) == record.file_size
    assert sha256_of(body) == record.plain_sha256
    with backup_open_plain(record=record) as chunks:
        assert body == b"".join(chunks)
    assert response["Cache-Control"] == "no-store"
    with schema_context("alfa"):
        download = BackupDownload.objects.get()
    assert (download.backup_id, download.user_id, download.ip_address) == (record.pk, alfa.admin.pk, "203.0.113.7")


@pytest.mark.parametrize(
    ("num_proxies", "forwarded_for", "recorded"),
    [
        (0, "198.51.100.9", "203.0.113.7"),  # no proxy trusted: the header is ignored
        (1, "192.0.2.1, 198.51.100.9", "198.51.100.9"),  # the proxy's view; the forged first entry is not used
        (2, "192.0.2.1, 198.51.100.9", "192.0.2.1"),
        (1, "not-an-address", "203.0.113.7"),
    ],
)
def test_download_records_the_clients_address_behind_trusted_proxies(
    committed, settings, num_proxies, forwarded_for, recorded
):
    settings.NUM_PROXIES = num_proxies
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    response = alfa.admin_client().get(
        download_url(record.pk), REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=forwarded_for
    )
    streamed(response)
    with schema_context("alfa"):
        assert BackupDownload.objects.get().ip_address == recorded


def test_download_of_a_tampered_object_is_refused(committed, settings):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    stored_object_tamper(settings.BACKUP_LOCAL_ROOT, record, at=1 / 2)

    response = alfa.admin_client().get(download_url(record.pk))
    assert response.status_code == 500
    assert "checksum" in response.json()["error"]
    with schema_context("alfa"):
        assert not BackupDownload.objects.exists()  # nothing was sent, so nothing was downloaded


def test_a_download_whose_content_fails_its_checksum_never_completes(committed):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    with schema_context("alfa"):
        BackupRecord.objects.filter(pk=record.pk).update(plain_sha256="0" * 64)

    response = alfa.admin_client().get(download_url(record.pk))
    received = bytearray()
    with pytest.raises(IntegrityError):
        for chunk in response.streaming_content:
            received += chunk
    assert 0 < len(received) < record.file_size  # the transfer breaks short of Content-Length
    with schema_context("alfa"):
        assert BackupDownload.objects.filter(backup=record).count() == 1  # bytes did leave: recorded


def test_head_of_a_download_sends_headers_only_and_records_nothing(committed):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")

    response = alfa.admin_client().head(download_url(record.pk))
    assert response.status_code == 200
    assert int(response["Content-Length"]) == record.file_size
    assert f'filename="{record.file_name}"' in response["Content-Disposition"]
    with schema_context("alfa"):
        assert not BackupDownload.objects.exists()


def test_download_of_a_failed_backup_answers_409(committed):
    alfa = committed["alfa"]
    with schema_context("alfa"):
        failed = BackupRecord.objects.create(file_name="x.sql", backup_type="manual", status="failed")
    response = alfa.admin_client().get(download_url(failed.pk))
    assert response.status_code == 409


def test_another_clinics_backup_id_answers_404_and_is_never_listed(committed, settings):
    alfa, beta = committed["alfa"], committed["beta"]
    beta_records = [backup_create(clinic=beta.clinic, backup_type="manual") for _ in range(2)]
    only_in_beta = max(record.pk for record in beta_records)
    with schema_context("alfa"):
        assert not BackupRecord.objects.filter(pk=only_in_beta).exists()

    client = alfa.admin_client()
    assert client.get(download_url(only_in_beta)).status_code == 404
    assert client.get(HISTORY_URL).json() == []
    stored = [
        path.relative_to(settings.BACKUP_LOCAL_ROOT).parts[0] for path in stored_files(settings.BACKUP_LOCAL_ROOT)
    ]
    assert set(stored) == {"beta"}


@pytest.mark.parametrize(("method", "url"), [("post", CREATE_URL), ("get", HISTORY_URL), ("get", download_url(1))])
def test_unauthenticated_401_and_non_admin_403(committed, method, url):
    alfa = committed["alfa"]
    assert getattr(alfa.client(), method)(url).status_code == 401
    staff = alfa.client()
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert getattr(staff, method)(url).status_code == 403
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()


@pytest.mark.parametrize(
    ("url", "body", "content_type", "status", "named"),
    [
        (CREATE_URL, "{no es json", "application/json", 400, "JSON"),
        (CREATE_URL, '{"download": true}', "application/json", 400, "cuerpo"),
        (CREATE_URL, "download=true", "application/x-www-form-urlencoded", 415, "application/x-www-form-urlencoded"),
        (CREATE_URL + "?download=quizas", "", "application/json", 400, "download=true"),
    ],
)
def test_create_with_bad_input_answers_4xx_and_makes_no_backup(committed, url, body, content_type, status, named):
    alfa = committed["alfa"]
    response = alfa.admin_client().generic("POST", url, body, content_type=content_type)
    assert response.status_code == status
    # The one error shape: "error", plus "fields" when a field (here the download= parameter) is refused.
    body = response.json()
    assert set(body) <= {"error", "fields"} and isinstance(body["error"], str), body
    assert named in " ".join([body["error"], *body.get("fields", {}).values()]), body
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()


@pytest.mark.parametrize("backup_id", ["abc", "-1", "1.5", "0", "99999999999999999999"])
def test_download_of_an_id_that_does_not_exist_answers_json_404(committed, backup_id):
    response = committed["alfa"].admin_client().get(f"/api/backups/history/{backup_id}/download/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and "error" in response.json()


def test_a_request_too_large_to_parse_answers_json_400(committed, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    query = "&".join(f"k{number}=v" for number in range(20))
    response = committed["alfa"].admin_client().get(f"{HISTORY_URL}?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json" and "error" in response.json()


def test_openapi_schema_describes_the_backup_endpoints(committed):
    response = committed["alfa"].client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        CREATE_URL,
        HISTORY_URL,
        "/api/backups/history/{id}/download/",
        "/api/admin/config/backup/",
        "/api/auth/token/",
    ):
        assert path in paths, sorted(paths)
    download = paths["/api/backups/history/{id}/download/"]["get"]
    assert {"401", "403", "404", "409"} <= set(download["responses"])
    assert download["security"] == [{"clinicJWT": []}]
    schemes = response.json()["components"]["securitySchemes"]
    assert schemes["clinicJWT"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    GENERATOR_STATS.reset()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "clinicJWT" in (tmp_path / "schema.yaml").read_text()
