"""The backups page with a broker configured: create and restore are jobs, and
the job's page follows them (real broker; in the browser, a real worker process)."""

from __future__ import annotations

import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.models import BackupRecord, BackupRestore
from apps.backups.services import backup_create, backup_open_plain
from tests.backups.restore.test_swap import change_clinic_data
from tests.backups_page.conftest import PAGE
from tests.backups_page.test_browser import _browser, clinic_data_hashes, sign_in
from tests.backups_page.test_views import html, page_client
from tests.conftest import PASSWORD
from tests.support.celery_workers import workers_running
from tests.support.live_server import LiveServer

API_JOB_KEYS = {"id", "kind", "status", "phase", "bytes_done", "bytes_total", "rows_done", "rows_total", "percent"}


def only_job() -> BackupJob:
    with schema_context("alfa"):
        return BackupJob.objects.get()


def test_create_queues_a_job_and_goes_to_its_page(committed, broker):
    alfa = committed["alfa"]
    client = page_client(alfa, user=alfa.admin)

    response = client.post(f"{PAGE}crear/")

    job = only_job()
    assert (job.kind, job.status, job.requested_by_id) == ("backup", "queued", alfa.admin.pk)
    assert response.status_code == 302 and response["Location"] == f"{PAGE}tareas/{job.pk}/"
    assert redis.Redis.from_url(broker).llen("celery") == 1  # made by a worker, not in the request
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()
    page = html(client.get(response["Location"]))
    assert "Backup de la clínica" in page and "En cola" in page
    assert f'data-status-url="{PAGE}tareas/{job.pk}/estado/"' in page
    assert '<meta http-equiv="refresh"' in page  # without JavaScript the page reloads itself
    index = html(client.get(PAGE))
    assert "Tareas en curso" in index and f"{PAGE}tareas/{job.pk}/" in index

    state = client.get(f"{PAGE}tareas/{job.pk}/estado/").json()
    assert API_JOB_KEYS <= set(state)  # the API's job shape
    assert (state["status"], state["status_label"], state["percent"]) == ("queued", "En cola", None)


def test_restore_after_confirmation_queues_a_job_and_goes_to_its_page(committed, broker):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = page_client(alfa, user=alfa.admin)

    refused = client.post(f"{PAGE}{record.pk}/restaurar/", {"confirm_name": "Clínica Alfa Ñandú", "password": "x"})
    assert refused.status_code == 400
    with schema_context("alfa"):
        assert not BackupJob.objects.exists()

    response = client.post(
        f"{PAGE}{record.pk}/restaurar/", {"confirm_name": "Clínica Alfa Ñandú", "password": PASSWORD}
    )

    job = only_job()
    assert (job.kind, job.status, job.params["backup_id"]) == ("restore", "queued", record.pk)
    assert response["Location"] == f"{PAGE}tareas/{job.pk}/"
    assert "Restauración de la clínica" in html(client.get(response["Location"]))
    # A second restore while this one waits is refused at once (409 in the API).
    again = client.post(f"{PAGE}{record.pk}/restaurar/", {"confirm_name": "Clínica Alfa Ñandú", "password": PASSWORD})
    assert again.status_code == 400 and "hay una restauración en cola" in html(again)
    assert redis.Redis.from_url(broker).llen("celery") == 1


def test_an_uploaded_backup_is_checked_in_the_request_and_restored_by_a_job(committed, broker):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    with backup_open_plain(record=record) as chunks:
        dump = b"".join(chunks)
    client = page_client(alfa, user=alfa.admin)
    form = {"confirm_name": "Clínica Alfa Ñandú", "password": PASSWORD}

    stranger = client.post(f"{PAGE}restaurar-archivo/", {**form, "file": SimpleUploadedFile("x.sql", b"SELECT 1;\n")})
    assert stranger.status_code == 400 and "No se restauró nada" in html(stranger)
    with schema_context("alfa"):
        assert not BackupJob.objects.exists()

    response = client.post(f"{PAGE}restaurar-archivo/", {**form, "file": SimpleUploadedFile(record.file_name, dump)})

    job = only_job()
    assert (job.kind, job.params["backup_id"], job.params["uploaded_file_name"]) == (
        "restore",
        record.pk,
        record.file_name,
    )
    assert response["Location"] == f"{PAGE}tareas/{job.pk}/"


def test_job_state_is_the_clinic_admins_only(committed, broker):
    alfa, beta = committed["alfa"], committed["beta"]
    beta_client = page_client(beta, user=beta.admin)
    beta_client.post(f"{PAGE}crear/")
    with schema_context("beta"):
        beta_job = BackupJob.objects.get()
    alfa_client = page_client(alfa, user=alfa.admin)

    assert alfa_client.get(f"{PAGE}tareas/{beta_job.pk}/estado/").status_code == 404
    assert alfa_client.get(f"{PAGE}tareas/{beta_job.pk}/").status_code == 404
    anonymous = Client(HTTP_HOST=alfa.domain).get(f"{PAGE}tareas/{beta_job.pk}/estado/")
    assert anonymous.status_code == 401 and anonymous.json()["session_ended_by_restore"] is False
    staff = page_client(alfa, user=alfa.staff).get(f"{PAGE}tareas/{beta_job.pk}/estado/")
    assert staff.status_code == 403 and "error" in staff.json()


def test_the_session_a_restore_ended_is_told_so_by_the_job_state(committed, broker):
    alfa = committed["alfa"]
    client = page_client(alfa, user=alfa.admin)
    client.post(f"{PAGE}crear/")
    job = only_job()
    with schema_context("alfa"):
        # A restore that ended after this session began ends it.
        BackupRestore.objects.create(
            source="backup", status="succeeded", started_at=timezone.now(), finished_at=timezone.now()
        )

    response = client.get(f"{PAGE}tareas/{job.pk}/estado/")

    assert response.status_code == 401
    assert response.json()["session_ended_by_restore"] is True
    assert response.json()["sign_in_url"] == f"{PAGE}entrar/?motivo=restauracion"


def test_in_a_browser_create_and_restore_show_their_progress_until_the_end(request, committed, worker_env, tmp_path):
    """A real worker process does the work; the job page follows it by polling."""
    alfa = committed["alfa"]
    with LiveServer() as site, workers_running(1, env=worker_env, folder=tmp_path / "workers"):
        browser = _browser(request)
        sign_in(browser, site, alfa.domain, alfa.admin.email)
        browser.click_button("Crear backup")

        assert browser.heading() == "Backup de la clínica"
        browser.driver.execute_script("window.samePage = true")
        browser.wait_for("#tarea[data-status=succeeded]")
        assert browser.driver.execute_script("return window.samePage") is True  # updated in place, not reloaded
        assert "Backup creado: backup-sql-alfa-" in browser.find(".job-result").text
        assert browser.find("progress").get_attribute("value") == "100"
        with schema_context("alfa"):
            record = BackupRecord.objects.get(status="succeeded")
        assert record.file_name in browser.find(".job-result").text

        before = clinic_data_hashes()
        change_clinic_data("alfa")
        browser.open(site.url(alfa.domain, f"{PAGE}{record.pk}/restaurar/"))
        browser.fill("Escribe el nombre de la clínica para confirmar", "Clínica Alfa Ñandú")
        browser.fill("Tu contraseña", PASSWORD)
        browser.click_button("Restaurar la clínica")

        assert browser.heading() == "Restauración de la clínica"
        browser.driver.execute_script("window.samePage = true")
        browser.wait_for("#tarea[data-status=succeeded]")
        assert browser.driver.execute_script("return window.samePage") is True
        assert "La clínica se restauró" in browser.find(".job-result").text
        browser.click_link("Volver a iniciar sesión")
        assert browser.heading() == "Iniciar sesión"
        assert "La clínica se restauró" in browser.text()

    assert clinic_data_hashes() == before
    with schema_context("alfa"):
        restore = BackupRestore.objects.get()
        jobs = list(BackupJob.objects.order_by("pk").values_list("kind", "status"))
    assert (restore.status, restore.requested_by_id) == ("succeeded", alfa.admin.pk)
    assert jobs == [("backup", "succeeded"), ("restore", "succeeded")]
