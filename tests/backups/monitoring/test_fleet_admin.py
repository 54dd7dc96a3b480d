"""The platform's Django admin: only on the public domain; the fleet of clinics'
backups, worst first, with actions; clinics' records read-only; CSS without DEBUG."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.utils import timezone
from django.utils.text import camel_case_to_spaces
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.tenants.models import BackupAlertState, Clinic, Domain
from apps.users.models import User

PLATFORM_HOST = "plataforma.test.localhost"
FLEET_URL = "/admin/tenants/clinicbackupstate/"


@pytest.fixture
def platform(committed):
    """The public tenant on its own domain and a platform superuser, removed afterwards."""
    # Another test (or the demo data) may have made the public tenant already: reuse it then.
    public = Clinic.objects.filter(schema_name="public").first()
    made_public = public is None
    if made_public:
        [public] = Clinic.objects.bulk_create([Clinic(schema_name="public", name="PsicoAdmin")])
    Domain.objects.create(domain=PLATFORM_HOST, tenant=public, is_primary=made_public)
    connection.set_schema_to_public()
    operator = User.objects.create_superuser("operador@psicoadmin.com", "clave-operador-123")
    client = Client(HTTP_HOST=PLATFORM_HOST)
    yield client, operator
    connection.set_schema_to_public()
    with connection.cursor() as cursor:  # not .delete(): its cascade looks for clinic tables in public
        cursor.execute("DELETE FROM users_user WHERE id = %s", [operator.pk])
    Domain.objects.filter(domain=PLATFORM_HOST).delete()
    if made_public:
        Clinic.objects.filter(schema_name="public").delete()
    BackupAlertState.objects.all().delete()
    Clinic.objects.filter(schema_name__in=["alfa", "beta"]).update(
        backup_schedule="disabled", last_backup_at=None, backup_failures=0, backup_retry_at=None, backup_last_error=""
    )


def test_admin_exists_only_on_the_platform_domain(platform, clinics):
    client, _operator = platform
    assert client.get("/admin/").status_code == 302  # to the login page
    # A staff user created inside a clinic's schema has no admin to log into.
    with schema_context("alfa"):
        User.objects.filter(email="recepcion@alfa.com").update(is_staff=True, is_superuser=True)
    try:
        clinic_client = Client(HTTP_HOST=clinics["alfa"].domain)
        assert clinic_client.get("/admin/").status_code == 404
        assert clinic_client.post("/admin/login/", {"username": "recepcion@alfa.com"}).status_code == 404
    finally:
        with schema_context("alfa"):
            User.objects.filter(email="recepcion@alfa.com").update(is_staff=False, is_superuser=False)


def test_fleet_lists_failing_and_overdue_clinics_first_with_filters(platform):
    client, operator = platform
    now = timezone.now()
    Clinic.objects.filter(schema_name="beta").update(backup_schedule="weekly", last_backup_at=now)
    Clinic.objects.filter(schema_name="alfa").update(
        backup_schedule="daily",
        last_backup_at=now - timedelta(days=3),
        backup_failures=3,
        backup_last_error="pg_dump falló (código 1)",
    )
    assert client.get(FLEET_URL).status_code == 302  # login first
    client.force_login(operator)
    page = client.get(FLEET_URL).content.decode()
    rows = [part.split('"')[0] for part in page.split('data-schema="')[1:]]
    assert rows == ["alfa", "beta"]  # alfa (Clínica Alfa) would sort first anyway: check the highlighting
    assert '<tr class="overdue" data-schema="alfa">' in page and '<tr class="ok" data-schema="beta">' in page
    assert "pg_dump falló (código 1)" in page and "Atrasada desde" in page
    assert "Fallos seguidos" in page and "Backups 30 días" in page

    # Beta failing, alfa fine: beta comes first now.
    Clinic.objects.filter(schema_name="alfa").update(last_backup_at=now, backup_failures=0, backup_last_error="")
    Clinic.objects.filter(schema_name="beta").update(backup_failures=1, backup_last_error="almacenamiento caído")
    page = client.get(FLEET_URL).content.decode()
    assert [part.split('"')[0] for part in page.split('data-schema="')[1:]] == ["beta", "alfa"]
    assert '<tr class="failing" data-schema="beta">' in page

    weekly = client.get(FLEET_URL, {"schedule": "weekly"}).content.decode()
    assert 'data-schema="beta"' in weekly and 'data-schema="alfa"' not in weekly
    ok = client.get(FLEET_URL, {"state": "ok"}).content.decode()
    assert 'data-schema="alfa"' in ok and 'data-schema="beta"' not in ok


def test_actions_back_up_now_and_run_a_drill_then_records_are_read_only(platform):
    client, operator = platform
    client.force_login(operator)
    response = client.post(FLEET_URL, {"action": "backup_now", "schemas": ["beta"]}, follow=True)
    with schema_context("beta"):
        [record] = BackupRecord.objects.all()
    assert record.status == "succeeded" and record.backup_type == "manual" and record.created_by is None
    assert f"Clínica Beta Óptima: backup {record.file_name} hecho." in response.content.decode()
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()

    response = client.post(FLEET_URL, {"action": "restore_drill", "schemas": ["beta", "alfa"]}, follow=True)
    page = response.content.decode()
    assert f"Clínica Beta Óptima: {record.file_name} se restaura y cuadra con su manifiesto." in page
    assert "Clínica Alfa Ñandú: el simulacro falló: No hay backups en el almacenamiento." in page
    assert (
        "Selecciona al menos una clínica."
        in client.post(FLEET_URL, {"action": "backup_now"}, follow=True).content.decode()
    )

    records = client.get(f"{FLEET_URL}beta/registros/")
    assert records.status_code == 200 and record.file_name in records.content.decode()
    content = records.content.decode().split('id="content-main"')[1]
    assert "<form" not in content and "<input" not in content  # nothing to add or change
    assert client.post(f"{FLEET_URL}beta/registros/").status_code == 405
    assert client.get(f"{FLEET_URL}public/registros/").status_code == 404
    assert client.get(f"{FLEET_URL}add/").status_code in (403, 404)


def test_a_non_staff_user_cannot_see_the_fleet(platform):
    client, _operator = platform
    user = User.objects.create_user("nadie@psicoadmin.com", "clave-123456")
    try:
        client.force_login(user)
        assert client.get(FLEET_URL).status_code == 302  # back to the login page
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM users_user WHERE id = %s", [user.pk])


def test_static_files_are_served_without_debug(platform, settings, clinics):
    settings.DEBUG = False
    client, _operator = platform
    css = client.get("/static/admin/css/base.css")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
    docs = Client(HTTP_HOST=clinics["alfa"].domain).get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    bundle = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle.status_code == 200


def test_admin_headers_and_every_field_label_are_spanish(platform):
    client, operator = platform
    client.force_login(operator)
    clinics = client.get("/admin/tenants/clinic/").content.decode()  # headers come from verbose_name
    for header in ("Nombre", "Esquema", "Frecuencia de backups", "Último backup automático", "Zona horaria"):
        assert f">{header}</a>" in clinics or f">{header}</span>" in clinics, header
    fleet = client.get(FLEET_URL).content.decode()
    for header in ("<th>Clínica</th>", "<th>Último backup</th>", "<th>Fallos seguidos</th>"):
        assert header in fleet
    records = client.get(f"{FLEET_URL}alfa/registros/").content.decode()
    for header in ("<th>Archivo</th>", "<th>Tamaño</th>", "<th>Hecho por</th>"):
        assert header in records

    untranslated = [
        f"{model.__name__}.{field.name}"
        for label in ("backups", "backups_ddl_cache", "tenants")
        for model in apps.get_app_config(label).get_models()
        for field in model._meta.get_fields()
        if field.concrete and str(field.verbose_name) == field.name.replace("_", " ")
    ]
    assert untranslated == []
    unnamed = [
        model.__name__
        for label in ("backups", "backups_ddl_cache", "tenants")
        for model in apps.get_app_config(label).get_models()
        if str(model._meta.verbose_name) == camel_case_to_spaces(model.__name__)
    ]
    assert unnamed == []


def test_with_a_broker_the_actions_are_queued_as_jobs_a_worker_runs(platform, worker_env, tmp_path):
    """No admin request waits for a backup or a drill: each clinic's action becomes a
    job (a real worker makes it); a clinic held by another operation queues nothing."""
    from apps.backups.jobs.models import BackupJob
    from apps.backups.locking import clinic_lock
    from tests.support.celery_workers import wait_until, workers_running

    client, operator = platform
    client.force_login(operator)
    with clinic_lock(schema_name="alfa", operation="restore"):
        page = client.post(FLEET_URL, {"action": "backup_now", "schemas": ["beta", "alfa"]}, follow=True)
    page = page.content.decode()
    with schema_context("beta"):
        [job] = BackupJob.objects.all()
        assert not BackupRecord.objects.exists()  # queued, not made in the request
    assert f"Clínica Beta Óptima: en cola (tarea {job.pk})" in page
    assert "Clínica Alfa Ñandú: no se puso en cola: La clínica alfa está ocupada" in page
    with schema_context("alfa"):
        assert not BackupJob.objects.exists()

    with workers_running(1, env=worker_env, folder=tmp_path / "workers"):

        def done() -> bool:
            with schema_context("beta"):
                return BackupJob.objects.get(pk=job.pk).status == "succeeded"

        wait_until(done, timeout=300, message="the queued backup")
        page = client.post(FLEET_URL, {"action": "restore_drill", "schemas": ["beta"]}, follow=True).content.decode()
        with schema_context("beta"):
            drill = BackupJob.objects.get(kind="drill")
        assert f"Clínica Beta Óptima: en cola (tarea {drill.pk})" in page

        def drilled() -> bool:
            with schema_context("beta"):
                return BackupJob.objects.get(pk=drill.pk).status in ("succeeded", "failed")

        wait_until(drilled, timeout=300, message="the queued drill")
    with schema_context("beta"):
        [record] = BackupRecord.objects.all()
        assert record.status == "succeeded" and record.backup_type == "manual"
        assert BackupJob.objects.get(pk=drill.pk).status == "succeeded"
