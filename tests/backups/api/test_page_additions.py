"""What the backups page needed from the API: failure reasons, the back-off state,
the restores list and deleting a manual backup."""

from datetime import timedelta

from axes.models import AccessAttempt
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.services import backup_create
from tests.backups.conftest import stored_files
from tests.conftest import PASSWORD

HISTORY_URL = "/api/backups/history/"
RESTORES_URL = "/api/backups/restores/"
CONFIG_URL = "/api/admin/config/backup/"


def test_history_says_why_a_backup_failed(alfa):
    with schema_context("alfa"):
        failed = BackupRecord.objects.create(
            file_name="", backup_type="automatic", status="failed", error="El almacenamiento no respondió."
        )
    [item] = alfa.admin_client().get(HISTORY_URL).json()
    assert item["id"] == failed.pk and item["status"] == "failed"
    assert item["error"] == "El almacenamiento no respondió."


def test_config_shows_the_back_off_of_failing_automatic_backups(alfa):
    retry_at = timezone.now().replace(microsecond=0) + timedelta(minutes=20)
    alfa.clinic.backup_schedule = "daily"
    alfa.clinic.backup_failures = 3
    alfa.clinic.backup_last_error = "Supabase no respondió al subir tras 5 intentos"
    alfa.clinic.backup_retry_at = retry_at
    alfa.clinic.save()
    body = alfa.admin_client().get(CONFIG_URL).json()
    assert body["consecutive_failures"] == 3
    assert body["last_error"] == "Supabase no respondió al subir tras 5 intentos"
    assert body["next_retry_at"] == retry_at.isoformat().replace("+00:00", "Z")
    # Daily with no automatic backup yet is due now, but not before the retry time.
    assert body["next_run_at"] == body["next_retry_at"]


def test_config_refuses_writing_the_back_off_fields(alfa):
    response = alfa.admin_client().patch(CONFIG_URL, {"consecutive_failures": 0}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": "Datos no válidos: revisa los campos.",
        "fields": {"consecutive_failures": "Campo de solo lectura."},
    }


def test_restores_lists_who_when_from_what_and_the_result(alfa, beta):
    now = timezone.now()
    with schema_context("alfa"):
        BackupRestore.objects.create(
            source="upload",
            backup_file_name="backup-sql-alfa-2025-11-25-140530.sql",
            uploaded_file_name="copia.sql",
            requested_by=alfa.admin,
            started_at=now - timedelta(hours=1),
            finished_at=now - timedelta(hours=1),
            status="failed",
            error="psql falló: ERROR: syntax error",
        )
        newest = BackupRestore.objects.create(
            source="backup", backup_file_name="b.sql", started_at=now, finished_at=now, status="succeeded"
        )
    with schema_context("beta"):
        BackupRestore.objects.create(source="backup", backup_file_name="beta.sql", status="succeeded")
    body = alfa.admin_client().get(RESTORES_URL).json()
    assert [item["id"] for item in body] == [newest.pk, body[1]["id"]]
    assert body[1] | {"id": 0, "started_at": "", "finished_at": ""} == {
        "id": 0,
        "source": "upload",
        "backup_id": None,
        "backup_file_name": "backup-sql-alfa-2025-11-25-140530.sql",
        "uploaded_file_name": "copia.sql",
        "requested_by": {"id": alfa.admin.pk, "email": "admin@alfa.com"},
        "status": "failed",
        "error": "psql falló: ERROR: syntax error",
        "started_at": "",
        "finished_at": "",
        "previous_schema": "",
    }


def test_restores_and_delete_are_for_clinic_admins_only(alfa):
    staff = alfa.client()
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert staff.get(RESTORES_URL).status_code == 403
    assert staff.delete(f"{HISTORY_URL}1/").status_code == 403
    assert alfa.client().get(RESTORES_URL).status_code == 401
    assert alfa.client().delete(f"{HISTORY_URL}1/").status_code == 401


def test_delete_removes_a_manual_backups_object_manifest_and_record(committed, settings):
    alfa = committed["alfa"]
    older = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    newest = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    client = alfa.admin_client()

    response = client.delete(f"{HISTORY_URL}{older.pk}/")

    assert response.status_code == 204
    with schema_context("alfa"):
        assert list(BackupRecord.objects.values_list("pk", flat=True)) == [newest.pk]
    root = settings.BACKUP_LOCAL_ROOT
    assert {p.relative_to(root).as_posix() for p in stored_files(root)} == {newest.file_path, newest.manifest_path}
    assert client.delete(f"{HISTORY_URL}{older.pk}/").status_code == 404


def test_delete_refuses_the_newest_good_backup_automatic_ones_and_other_clinics(committed, settings):
    alfa, beta = committed["alfa"], committed["beta"]
    automatic = backup_create(clinic=alfa.clinic, backup_type="automatic")
    newest = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    other = backup_create(clinic=beta.clinic, backup_type="manual")
    files_before = stored_files(settings.BACKUP_LOCAL_ROOT)
    client = alfa.admin_client()

    response = client.delete(f"{HISTORY_URL}{newest.pk}/")
    assert response.status_code == 409
    assert response.json() == {"error": "Es el backup correcto más reciente de la clínica: no se puede eliminar."}
    response = client.delete(f"{HISTORY_URL}{automatic.pk}/")
    assert response.status_code == 409
    assert "Solo se pueden eliminar backups manuales" in response.json()["error"]
    assert client.delete(f"{HISTORY_URL}{other.pk}/").status_code == 404

    assert stored_files(settings.BACKUP_LOCAL_ROOT) == files_before
    with schema_context("alfa"):
        assert BackupRecord.objects.count() == 2
    with schema_context("beta"):
        assert BackupRecord.objects.filter(pk=other.pk).exists()


def test_a_failed_manual_backup_can_be_deleted(committed):
    alfa = committed["alfa"]
    with schema_context("alfa"):
        failed = BackupRecord.objects.create(file_name="", backup_type="manual", status="failed", error="x")
    assert alfa.admin_client().delete(f"{HISTORY_URL}{failed.pk}/").status_code == 204
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()


def test_the_openapi_schema_documents_the_additions(committed):
    schema = committed["alfa"].client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "get" in schema["paths"][RESTORES_URL]
    delete = schema["paths"]["/api/backups/history/{id}/"]["delete"]
    assert {"204", "404", "409"} <= set(delete["responses"])
    components = schema["components"]["schemas"]
    assert "error" in components["BackupRecord"]["properties"]
    assert {"consecutive_failures", "last_error", "next_retry_at", "next_run_at"} <= set(
        components["BackupConfig"]["properties"]
    )
    assert {"requested_by", "status", "error", "source"} <= set(components["RestoreListItem"]["properties"])


def test_delete_needs_the_password_or_a_recent_sign_in(committed, settings):
    alfa = committed["alfa"]
    older = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    files_before = stored_files(settings.BACKUP_LOCAL_ROOT)
    client = alfa.admin_client()
    settings.REAUTH_WINDOW_MINUTES = 0  # the sign-in is now too old

    refused = client.delete(f"{HISTORY_URL}{older.pk}/")
    assert refused.status_code == 403
    assert "requiere confirmar tu identidad" in refused.json()["error"]
    wrong = client.delete(f"{HISTORY_URL}{older.pk}/", {"password": "no-es-esta"}, format="json")
    with schema_context("alfa"):  # a committed failure would count towards later lockout tests
        AccessAttempt.objects.all().delete()
    assert wrong.status_code == 403
    assert stored_files(settings.BACKUP_LOCAL_ROOT) == files_before
    with schema_context("alfa"):
        assert BackupRecord.objects.filter(pk=older.pk).exists()

    confirmed = client.delete(f"{HISTORY_URL}{older.pk}/", {"password": PASSWORD}, format="json")
    assert confirmed.status_code == 204
    with schema_context("alfa"):
        assert not BackupRecord.objects.filter(pk=older.pk).exists()
