"""The backups page through Django's test client: access, sessions, forms, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.services import backup_create, backup_open_plain
from tests.backups.conftest import stored_files, stored_object_tamper
from tests.backups.restore.test_swap import change_clinic_data
from tests.backups_page.conftest import PAGE
from tests.backups_page.test_browser import clinic_data_hashes
from tests.conftest import PASSWORD


def page_client(fixture, *, user=None, **options) -> Client:
    """A browser-like client of the clinic's domain, signed in through the page when ``user`` is given."""
    client = Client(HTTP_HOST=fixture.domain, **options)
    if user is not None:
        signing_in = Client(HTTP_HOST=fixture.domain)
        response = signing_in.post(f"{PAGE}entrar/", {"username": user.email, "password": PASSWORD})
        assert response.status_code == 302, response.content.decode()
        client.cookies = signing_in.cookies
    return client


def html(response) -> str:
    return response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(alfa):
    response = page_client(alfa).get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"{PAGE}entrar/?next=%2Fbackups%2F"


def test_sign_in_with_a_wrong_password_says_so_in_spanish(alfa):
    response = page_client(alfa).post(f"{PAGE}entrar/", {"username": alfa.admin.email, "password": "x"})
    assert response.status_code == 200
    assert "correo electrónico" in html(response).lower() and "contraseña" in html(response).lower()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_sign_in_accepts_the_email_in_any_case_and_binds_the_session_to_the_clinic(alfa):
    client = Client(HTTP_HOST=alfa.domain)
    response = client.post(f"{PAGE}entrar/", {"username": "ADMIN@Alfa.com", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == PAGE
    assert client.session["clinic"] == "alfa" and client.session["login_at"] > 0
    assert client.get(PAGE).status_code == 200


def test_sign_out_is_a_post_and_ends_the_session(alfa):
    client = page_client(alfa, user=alfa.admin)
    assert client.get(f"{PAGE}salir/").status_code == 405
    assert client.post(f"{PAGE}salir/").status_code == 302
    assert client.get(PAGE).status_code == 302


def test_forms_without_the_csrf_token_are_refused_in_spanish(alfa):
    client = page_client(alfa, user=alfa.admin, enforce_csrf_checks=True)
    response = client.post(f"{PAGE}crear/")
    assert response.status_code == 403
    assert "El formulario caducó" in html(response)
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()


def test_a_non_admin_gets_a_refusal_page(alfa):
    client = page_client(alfa, user=alfa.staff)
    for method, path in (("get", PAGE), ("post", f"{PAGE}crear/"), ("get", f"{PAGE}1/descargar/")):
        response = getattr(client, method)(path)
        assert response.status_code == 403
        assert "Acceso solo para administradores" in html(response)
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()


def test_a_session_cookie_of_another_clinic_is_refused(alfa, beta):
    alfa_client = page_client(alfa, user=alfa.admin)
    beta_client = Client(HTTP_HOST=beta.domain)
    beta_client.cookies["sessionid"] = alfa_client.cookies["sessionid"].value
    response = beta_client.get(PAGE)
    assert response.status_code == 403
    assert "no pertenece a Clínica Beta Óptima" in html(response)


def test_sessions_signed_in_before_a_restore_end(alfa):
    client = page_client(alfa, user=alfa.admin)
    assert client.get(PAGE).status_code == 200
    with schema_context("alfa"):
        BackupRestore.objects.create(
            source="backup", status="succeeded", started_at=timezone.now(), finished_at=timezone.now() + timedelta(1)
        )
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"] == f"{PAGE}entrar/?motivo=restauracion"
    assert "La clínica se restauró" in html(client.get(response["Location"]))


def test_history_is_newest_first_paginated_and_shows_failure_reasons(alfa, settings):
    settings.BACKUPS_PAGE_SIZE = 3
    now = timezone.now()
    with schema_context("alfa"):
        ids = [
            BackupRecord.objects.create(
                file_name=f"backup-sql-alfa-{index}.sql",
                backup_type="automatic",
                status="failed" if index == 0 else "succeeded",
                error="El almacenamiento no respondió" if index == 0 else "",
                created_at=now - timedelta(days=index),
            ).pk
            for index in range(5)
        ]
    client = page_client(alfa, user=alfa.admin)
    first = html(client.get(PAGE))
    assert [f'data-backup-id="{pk}"' in first for pk in ids] == [True, True, True, False, False]
    assert first.index(f'data-backup-id="{ids[0]}"') < first.index(f'data-backup-id="{ids[1]}"')
    assert "El almacenamiento no respondió" in first and "Página 1 de 2 (5 backups)" in first
    second = html(client.get(PAGE + "?pagina=2"))
    assert [f'data-backup-id="{pk}"' in second for pk in ids] == [False, False, False, True, True]
    assert client.get(PAGE + "?pagina=nada").status_code == 200


def test_dates_are_shown_in_the_clinics_time_zone(alfa):
    alfa.clinic.time_zone = "America/Argentina/Buenos_Aires"  # UTC-3, no DST
    alfa.clinic.save()
    with schema_context("alfa"):
        BackupRecord.objects.create(
            file_name="x.sql",
            backup_type="manual",
            status="succeeded",
            created_at=datetime(2025, 3, 1, 2, 30, tzinfo=UTC),
        )
    body = html(page_client(alfa, user=alfa.admin).get(PAGE))
    assert "28/02/2025 23:30" in body and "America/Argentina/Buenos_Aires" in body


def test_schedule_errors_are_shown_beside_the_field_and_nothing_changes(alfa):
    client = page_client(alfa, user=alfa.admin)
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    for value, message in (
        ("", "Indica la fecha y hora del backup."),
        (past, "La fecha y hora deben ser futuras."),
        ("mañana", "Indica una fecha y hora válidas."),
    ):
        response = client.post(f"{PAGE}programacion/", {"backup_schedule": "scheduled", "next_scheduled_backup": value})
        assert response.status_code == 400
        assert f'<ul class="errors" id="id_next_scheduled_backup_error"><li>{message}</li></ul>' in html(response)
        assert 'aria-invalid="true" aria-describedby="id_next_scheduled_backup_error"' in html(response)
    response = client.post(f"{PAGE}programacion/", {"backup_schedule": "hourly"})
    assert response.status_code == 400 and 'id="id_backup_schedule_error"' in html(response)
    alfa.clinic.refresh_from_db()
    assert alfa.clinic.backup_schedule == "disabled" and alfa.clinic.next_scheduled_backup is None


def test_the_back_off_state_of_automatic_backups_is_shown(alfa):
    alfa.clinic.backup_schedule = "daily"
    alfa.clinic.backup_failures = 3
    alfa.clinic.backup_last_error = "Supabase no respondió al subir tras 5 intentos"
    alfa.clinic.backup_retry_at = timezone.now() + timedelta(minutes=20)
    alfa.clinic.save()
    body = html(page_client(alfa, user=alfa.admin).get(PAGE))
    assert "Fallos seguidos" in body and "Supabase no respondió al subir tras 5 intentos" in body
    assert "próximo intento desde" in body


def test_an_oversized_upload_is_refused_from_its_declared_length(alfa, settings):
    settings.MAX_RESTORE_UPLOAD_SIZE = 1000
    client = page_client(alfa, user=alfa.admin)
    response = client.post(
        f"{PAGE}restaurar-archivo/",
        {"file": ("grande.sql", b"x" * 5000), "confirm_name": alfa.clinic.name, "password": PASSWORD},
    )
    assert response.status_code == 400
    assert "Archivo demasiado grande: el límite es 1000 bytes." in html(response)


def test_an_upload_needs_the_csrf_token_once_its_size_is_acceptable(alfa):
    client = page_client(alfa, user=alfa.admin, enforce_csrf_checks=True)
    response = client.post(f"{PAGE}restaurar-archivo/", {"confirm_name": alfa.clinic.name, "password": PASSWORD})
    assert response.status_code == 403 and "El formulario caducó" in html(response)


def test_an_unknown_file_is_refused_and_nothing_is_restored(committed):
    alfa = committed["alfa"]
    client = page_client(alfa, user=alfa.admin)
    upload = SimpleUploadedFile("otra.sql", b"DROP SCHEMA alfa CASCADE;\n")
    response = client.post(
        f"{PAGE}restaurar-archivo/", {"file": upload, "confirm_name": "clínica alfa ñandú", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "No se restauró nada: El archivo no corresponde a ningún backup de esta clínica" in html(response)
    with schema_context("alfa"):
        assert not BackupRestore.objects.filter(status="succeeded").exists()


def test_restore_needs_the_clinics_name_and_the_password(committed):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = page_client(alfa, user=alfa.admin)
    url = f"{PAGE}{record.pk}/restaurar/"
    assert "Qué va a pasar" in html(client.get(url))
    response = client.post(url, {"confirm_name": "Clínica Beta Óptima", "password": "mala"})
    assert response.status_code == 400
    body = html(response)
    assert "No coincide: escribe exactamente «Clínica Alfa Ñandú»." in body
    assert "La contraseña no es correcta." in body
    with schema_context("alfa"):
        assert not BackupRestore.objects.exists()


def test_a_server_fault_restoring_in_the_request_answers_500_with_the_admins_message_only(
    committed, settings, tmp_path, caplog
):
    """Without a broker the page restores in the request: a server fault (no psql)
    is a 500 with the clinic admin's message; the path and psql's words go to the log."""
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "no-psql-here")
    client = page_client(alfa, user=alfa.admin)

    response = client.post(
        f"{PAGE}{record.pk}/restaurar/", {"confirm_name": "Clínica Alfa Ñandú", "password": PASSWORD}
    )

    assert response.status_code == 500
    body = html(response)
    assert "No se restauró nada: La restauración falló por un error del servidor" in body
    assert str(tmp_path) not in body and "psql" not in body
    assert str(tmp_path) in caplog.text
    with schema_context("alfa"):
        assert list(BackupRestore.objects.values_list("status", flat=True)) == ["failed"]


@pytest.mark.parametrize("csrf_checked", [True, False])
def test_an_upload_on_a_full_temporary_folder_is_a_507_that_says_so_and_keeps_no_space(
    committed, settings, tmp_path, csrf_checked
):
    """As in the API: the page's restore upload that finds the server's temporary
    folder full (a real 1 MB tmpfs) says why, and its partial file is removed at once.
    (With CSRF checked, as in production, the check is what first reads the body.)"""
    import os

    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.support.disks import small_tmpfs

    alfa = committed["alfa"]
    client = page_client(alfa, user=alfa.admin, enforce_csrf_checks=csrf_checked)
    with small_tmpfs(tmp_path / "tmpfs") as full_disk:
        settings.FILE_UPLOAD_TEMP_DIR = str(full_disk)
        settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # larger uploads go to a temporary file
        upload = SimpleUploadedFile("backup-sql-alfa-2025-11-25-140530.sql", os.urandom(3 * 1024 * 1024))

        response = client.post(
            f"{PAGE}restaurar-archivo/", {"file": upload, "confirm_name": "Clínica Alfa Ñandú", "password": PASSWORD}
        )

        assert response.status_code == 507
        assert "no tiene espacio" in html(response)
        assert list(full_disk.iterdir()) == []  # gone now, not when the worker exits
    with schema_context("alfa"):
        assert not BackupRestore.objects.exists()


def test_delete_needs_the_password_and_removes_record_object_and_manifest_together(committed, settings):
    alfa = committed["alfa"]
    older = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    newest = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    client = page_client(alfa, user=alfa.admin)
    body = html(client.get(PAGE))
    assert f'href="{PAGE}{older.pk}/eliminar/"' in body and f'href="{PAGE}{newest.pk}/eliminar/"' not in body
    assert "El más reciente: no se puede eliminar" in body

    response = client.post(f"{PAGE}{older.pk}/eliminar/", {"password": "mala"})
    assert response.status_code == 400 and "La contraseña no es correcta." in html(response)
    with schema_context("alfa"):
        assert BackupRecord.objects.filter(pk=older.pk).exists()

    response = client.post(f"{PAGE}{older.pk}/eliminar/", {"password": PASSWORD})
    assert response.status_code == 302
    with schema_context("alfa"):
        assert list(BackupRecord.objects.values_list("pk", flat=True)) == [newest.pk]
    remaining = {
        path.relative_to(settings.BACKUP_LOCAL_ROOT).as_posix() for path in stored_files(settings.BACKUP_LOCAL_ROOT)
    }
    assert remaining == {newest.file_path, newest.manifest_path}

    response = client.post(f"{PAGE}{newest.pk}/eliminar/", {"password": PASSWORD})
    assert response.status_code == 400
    assert "Es el backup correcto más reciente de la clínica: no se puede eliminar." in html(response)
    with schema_context("alfa"):
        assert BackupRecord.objects.filter(pk=newest.pk).exists()


def test_another_clinics_backup_is_404_on_every_action(committed):
    alfa, beta = committed["alfa"], committed["beta"]
    record = backup_create(clinic=beta.clinic, backup_type="manual")
    with schema_context("alfa"):
        assert not BackupRecord.objects.filter(pk=record.pk).exists()
    client = page_client(alfa, user=alfa.admin)
    for action in ("descargar", "restaurar", "eliminar"):
        assert client.get(f"{PAGE}{record.pk}/{action}/").status_code == 404


def test_the_page_is_only_on_clinic_domains(clinics, db):
    response = Client(HTTP_HOST="localhost").get(PAGE)
    assert response.status_code == 404


@pytest.mark.parametrize("asset", ["backups_page/page.css", "backups_page/page.js"])
def test_assets_are_served_by_the_project(alfa, asset):
    response = page_client(alfa).get(f"/static/{asset}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)


def test_a_backup_that_cannot_be_made_is_a_message_not_an_error_page(committed, settings):
    settings.MAX_BACKUP_SIZE = 10_000
    alfa = committed["alfa"]
    client = page_client(alfa, user=alfa.admin)
    response = client.post(f"{PAGE}crear/", follow=True)
    assert response.status_code == 200
    assert "El backup no se pudo crear: Backup demasiado grande: supera el límite de 9.8 KB." in html(response)


def test_a_stored_object_that_fails_its_check_is_not_downloaded(committed, settings):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    stored_object_tamper(settings.BACKUP_LOCAL_ROOT, record, at=0.5)
    client = page_client(alfa, user=alfa.admin)
    response = client.get(f"{PAGE}{record.pk}/descargar/", follow=True)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert f"No se pudo descargar {record.file_name}:" in html(response)
    with schema_context("alfa"):
        assert not record.downloads.exists()


def test_an_uploaded_backup_of_the_clinic_brings_its_data_back_and_ends_the_session(committed):
    """Without a broker the upload is restored in the request (``upload_restore``)."""
    alfa = committed["alfa"]
    client = page_client(alfa, user=alfa.admin)
    record = backup_create(clinic=alfa.clinic, backup_type="manual", user=alfa.admin)
    with backup_open_plain(record=record) as chunks:
        dump = b"".join(chunks)
    before = clinic_data_hashes()
    change_clinic_data("alfa")
    assert clinic_data_hashes() != before

    upload = SimpleUploadedFile("copia-de-noviembre.sql", dump)
    response = client.post(
        f"{PAGE}restaurar-archivo/", {"file": upload, "confirm_name": "Clínica Alfa Ñandú", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "Clínica restaurada" in html(response) and record.file_name in html(response)
    assert clinic_data_hashes() == before
    with schema_context("alfa"):
        restore = BackupRestore.objects.get()
    assert (restore.status, restore.source, restore.backup_id) == ("succeeded", "upload", record.pk)
    assert (restore.uploaded_file_name, restore.requested_by_id) == ("copia-de-noviembre.sql", alfa.admin.pk)
    again = client.get(PAGE)
    assert again.status_code == 302 and again["Location"].startswith(f"{PAGE}entrar/")


def test_a_failed_jobs_page_shows_the_error_and_no_work_in_progress(alfa):
    with schema_context("alfa"):
        job = BackupJob.objects.create(
            kind="backup", status="failed", error="El almacenamiento no respondió.", requested_by=alfa.admin
        )
    body = html(page_client(alfa, user=alfa.admin).get(f"{PAGE}tareas/{job.pk}/"))
    assert "El almacenamiento no respondió." in body
    # A <progress> without a value is drawn as work still going on.
    assert '<progress id="progreso" max="100" value="0.0">' in body
    assert 'http-equiv="refresh"' not in body
