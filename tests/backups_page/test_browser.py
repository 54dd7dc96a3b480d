"""End to end, in a real headless Chromium against a live server of the test database."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context
from selenium.webdriver.support.ui import WebDriverWait

from apps.backups.engine.pg_clients import libpq_params
from apps.backups.jobs.models import BackupJob
from apps.backups.models import BackupDownload, BackupRecord, BackupRestore
from apps.tenants.models import Clinic
from apps.tenants.services import clinic_time_zone_update
from tests.backups.restore.test_swap import change_clinic_data
from tests.backups_page.conftest import PAGE
from tests.conftest import PASSWORD
from tests.support.browser import WAIT_SECONDS, Browser
from tests.support.database import table_hashes
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def site(clinics):
    with LiveServer() as server:
        yield server


def _browser(request, **size) -> Browser:
    browser = Browser(**size)
    request.addfinalizer(lambda: _finish(request, browser))
    return browser


def _finish(request, browser: Browser) -> None:
    """Screenshots of every page on failure (or always, with BROWSER_SCREENSHOTS=always)."""
    try:
        reports = [getattr(request.node, f"report_{when}", None) for when in ("setup", "call")]
        failed = any(report is not None and report.failed for report in reports)
        if failed or os.environ.get("BROWSER_SCREENSHOTS") == "always":
            folder = browser.save_screenshots(request.node.name)
            print(f"\nCapturas de pantalla: {folder}")
    finally:
        browser.quit()


@pytest.fixture
def browser(request) -> Browser:
    return _browser(request)


def sign_in(browser: Browser, server: LiveServer, domain: str, email: str, password: str = PASSWORD) -> None:
    browser.open(server.url(domain, PAGE))
    assert browser.heading() == "Iniciar sesión"
    browser.fill("Correo electrónico", email)
    browser.fill("Contraseña", password)
    browser.click_button("Entrar")


def clinic_data_hashes() -> dict[str, str]:
    """Every table of alfa but the sessions (signing out changes them)."""
    hashes = table_hashes("alfa")
    hashes.pop("django_session")
    return hashes


def history_rows(browser: Browser) -> list[str]:
    return [row.get_attribute("data-backup-id") for row in browser.find_all("table.history tbody tr")]


def test_admin_signs_in_makes_a_backup_sees_it_and_downloads_the_verified_file(committed, site, browser):
    alfa = committed["alfa"]
    with schema_context("alfa"):
        failed = BackupRecord.objects.create(
            file_name="",
            backup_type="automatic",
            status="failed",
            error="pg_dump terminó con código 1: could not connect to server",
            created_at=timezone.now() - timedelta(hours=5),
        )
    sign_in(browser, site, alfa.domain, alfa.admin.email)
    assert browser.heading() == "Backups de Clínica Alfa Ñandú"
    assert history_rows(browser) == [str(failed.pk)]
    failed_row = browser.find(f"tr[data-backup-id='{failed.pk}']").text
    assert "Fallido" in failed_row and "pg_dump terminó con código 1: could not connect to server" in failed_row

    browser.click_button("Crear backup")

    assert "Backup creado y subido a almacenamiento local" in browser.find(".message.success").text
    with schema_context("alfa"):
        record = BackupRecord.objects.get(status="succeeded")
    assert history_rows(browser) == [str(record.pk), str(failed.pk)]
    row = browser.find(f"tr[data-backup-id='{record.pk}']")
    assert "Manual" in row.text and "Completado" in row.text and alfa.admin.email in row.text
    local = timezone.localtime(record.created_at, timezone.get_fixed_timezone(0))
    assert local.strftime("%d/%m/%Y %H:%M") in row.text  # the clinic is on UTC
    if os.environ.get("BACKUPS_PAGE_SCREENSHOT"):  # the README's picture
        browser.driver.set_window_size(1280, 1000)
        browser.driver.save_screenshot(os.environ["BACKUPS_PAGE_SCREENSHOT"])

    row.find_element("link text", "Descargar").click()
    downloaded = browser.downloaded_file(record.file_name)

    manifest = json.loads((Path(settings.BACKUP_LOCAL_ROOT) / record.manifest_path).read_bytes())
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == manifest["plain"]["sha256"]
    assert downloaded.stat().st_size == manifest["plain"]["size"] == record.file_size
    browser.open(site.url(alfa.domain, PAGE))
    downloads = browser.find("[aria-labelledby=titulo-descargas] tbody").text
    assert record.file_name in downloads and alfa.admin.email in downloads and "127.0.0.1" in downloads
    with schema_context("alfa"):
        assert BackupDownload.objects.filter(backup=record, user=alfa.admin).count() == 1


def test_while_a_backup_runs_in_the_request_the_button_is_busy_and_the_row_appears_after(committed, site, browser):
    """No broker: the backup runs in the request. A session holds a lock the backup's
    reader waits for, and lets it go only once the backup waits for it: the page's
    busy state is recorded (in sessionStorage, which outlives the navigation) while
    the request is still running."""
    alfa = committed["alfa"]
    sign_in(browser, site, alfa.domain, alfa.admin.email)
    browser.driver.execute_script(
        """const form = document.querySelector("form[data-busy]");
        new MutationObserver(() => sessionStorage.setItem("busy", JSON.stringify([
            form.getAttribute("aria-busy"), form.querySelector("button").disabled,
            form.querySelector(".busy[role=status]").textContent,
        ]))).observe(form, {attributes: true, childList: true, characterData: true, subtree: true});"""
    )
    backup_waited = threading.Event()
    with psycopg.connect(**libpq_params()) as holder, psycopg.connect(**libpq_params(), autocommit=True) as watcher:
        holder.execute("LOCK TABLE alfa.auth_group IN ACCESS EXCLUSIVE MODE")

        def release_once_the_backup_waits() -> None:
            try:
                WebDriverWait(None, WAIT_SECONDS).until(
                    lambda _: watcher.execute(
                        "SELECT count(*) FROM pg_locks WHERE relation = 'alfa.auth_group'::regclass AND NOT granted"
                    ).fetchone()[0]
                )
                with schema_context("alfa"):
                    if list(BackupRecord.objects.values_list("status", flat=True)) == ["running"]:
                        backup_waited.set()
            finally:
                holder.rollback()
                connection.close()

        releaser = threading.Thread(target=release_once_the_backup_waits)
        releaser.start()
        browser.click_button("Crear backup")  # returns with the next page
        releaser.join()

    assert backup_waited.is_set()
    busy = "Creando el backup… puede tardar unos minutos; no cierres esta página."
    # Said so, and the button could not send it twice.
    assert json.loads(browser.driver.execute_script("return sessionStorage.getItem('busy')")) == ["true", True, busy]
    assert "Backup creado" in browser.find(".message.success").text
    with schema_context("alfa"):
        record = BackupRecord.objects.get()
    assert record.status == "succeeded"
    assert history_rows(browser) == [str(record.pk)]


def test_the_schedule_is_saved_in_the_clinics_time_zone_and_shown_after_reload(
    committed, clinic_settings_kept, site, browser
):
    alfa = committed["alfa"]
    clinic_time_zone_update(clinic=Clinic.objects.get(schema_name="alfa"), time_zone="America/Mexico_City")
    sign_in(browser, site, alfa.domain, alfa.admin.email)

    browser.find("#id_backup_schedule option[value=scheduled]").click()
    browser.click_button("Guardar programación")
    error = browser.find("#id_next_scheduled_backup_error").text
    assert error == "Indica la fecha y hora del backup."
    assert browser.find("#id_next_scheduled_backup").get_attribute("aria-invalid") == "true"

    when = (timezone.now() + timedelta(days=3)).astimezone(timezone.get_fixed_timezone(-360))
    browser.find("#id_backup_schedule option[value=scheduled]").click()
    # Chromium's datetime-local field is typed as its digits, field by field.
    field = browser.find("#id_next_scheduled_backup")
    browser.driver.execute_script("arguments[0].value = arguments[1]", field, when.strftime("%Y-%m-%dT%H:%M"))
    browser.click_button("Guardar programación")
    assert browser.find(".message.success").text == "Programación guardada."

    browser.open(site.url(alfa.domain, PAGE))
    assert browser.find("#id_backup_schedule option:checked").get_attribute("value") == "scheduled"
    assert browser.find("#id_next_scheduled_backup").get_attribute("value") == when.strftime("%Y-%m-%dT%H:%M")
    assert browser.find("#proximo").text == when.strftime("%d/%m/%Y %H:%M")
    clinic = Clinic.objects.get(schema_name="alfa")
    assert clinic.backup_schedule == "scheduled"
    assert clinic.next_scheduled_backup == when.replace(second=0, microsecond=0)

    browser.find("#id_backup_schedule option[value=weekly]").click()
    browser.click_button("Guardar programación")
    browser.open(site.url(alfa.domain, PAGE))
    assert browser.find("#id_backup_schedule option:checked").get_attribute("value") == "weekly"
    assert browser.find("#id_next_scheduled_backup").get_attribute("value") == ""
    assert browser.find("#proximo").text.endswith("00:00")  # the clinic's next Sunday, local midnight
    assert Clinic.objects.get(schema_name="alfa").backup_schedule == "weekly"


def test_restore_with_the_typed_clinic_name_brings_the_data_back_and_ends_every_session(
    request, committed, site, browser
):
    alfa = committed["alfa"]
    other_session = _browser(request)  # the same administrator, signed in elsewhere before the restore
    sign_in(other_session, site, alfa.domain, alfa.admin.email)
    sign_in(browser, site, alfa.domain, alfa.admin.email)
    browser.click_button("Crear backup")
    with schema_context("alfa"):
        record = BackupRecord.objects.get()
    before = clinic_data_hashes()
    change_clinic_data("alfa")
    assert clinic_data_hashes() != before

    browser.find(f"tr[data-backup-id='{record.pk}']").find_element("link text", "Restaurar").click()
    browser.snap()
    assert browser.heading() == "Restaurar la clínica"
    assert "se guarda 7 días como copia apartada" in browser.find("#que-pasa").text
    browser.fill("Escribe el nombre de la clínica para confirmar", "Clínica Alfa")
    assert not browser.button("Restaurar la clínica").is_enabled()
    browser.fill("Escribe el nombre de la clínica para confirmar", "Clínica Alfa Ñandú")
    browser.fill("Tu contraseña", "no-es-la-clave")
    assert browser.button("Restaurar la clínica").is_enabled()
    browser.click_button("Restaurar la clínica")
    assert browser.find("#id_password_error").text == "La contraseña no es correcta."
    assert clinic_data_hashes() != before  # nothing ran

    browser.fill("Tu contraseña", PASSWORD)
    browser.click_button("Restaurar la clínica")

    assert browser.heading() == "Clínica restaurada"
    assert record.file_name in browser.text()
    assert clinic_data_hashes() == before
    with schema_context("alfa"):
        restore = BackupRestore.objects.get()
    assert restore.status == "succeeded" and restore.requested_by_id == alfa.admin.pk
    browser.open(site.url(alfa.domain, PAGE))
    assert browser.heading() == "Iniciar sesión"
    other_session.open(site.url(alfa.domain, PAGE))
    assert other_session.heading() == "Iniciar sesión"
    assert "La clínica se restauró" in other_session.text()

    sign_in(browser, site, alfa.domain, alfa.admin.email)
    restores = browser.find("[aria-labelledby=titulo-restauraciones] tbody").text
    assert record.file_name in restores and "Completado" in restores and alfa.admin.email in restores


def test_a_professional_is_refused(committed, professional, site, browser):
    alfa = committed["alfa"]
    sign_in(browser, site, alfa.domain, professional.email)
    assert browser.heading() == "Acceso solo para administradores"
    assert "Solo el administrador de la clínica" in browser.text()
    assert "Crear backup" not in browser.text()
    browser.open(site.url(alfa.domain, "/backups/1/descargar/"))
    assert browser.heading() == "Acceso solo para administradores"


def test_another_clinics_session_is_refused(committed, site, browser):
    alfa, beta = committed["alfa"], committed["beta"]
    sign_in(browser, site, alfa.domain, alfa.admin.email)
    session = browser.driver.get_cookie("sessionid")["value"]
    browser.open(site.url(beta.domain, "/backups/entrar/"))
    browser.driver.add_cookie({"name": "sessionid", "value": session, "path": "/"})
    browser.open(site.url(beta.domain, PAGE))
    assert browser.heading() == "Sesión no válida en esta clínica"
    assert "no pertenece a Clínica Beta Óptima" in browser.text()
    assert "Crear backup" not in browser.text()


def test_at_360_px_every_page_fits_every_control_is_labelled_and_works_from_the_keyboard(request, committed, site):
    alfa = committed["alfa"]
    browser = _browser(request, width=360, height=800)
    browser.open(site.url(alfa.domain, PAGE))
    browser.fill("Correo electrónico", alfa.admin.email)
    browser.fill("Contraseña", PASSWORD)
    browser.press_enter_in("Contraseña")
    assert browser.heading() == "Backups de Clínica Alfa Ñandú"

    # Keyboard only: Tab until "Crear backup" has the focus, then Enter.
    body = browser.find("body")
    for _ in range(10):
        body = browser.driver.switch_to.active_element
        if body.text == "Crear backup":
            break
        body.send_keys("\ue004")  # Tab
    assert browser.driver.switch_to.active_element.text == "Crear backup"
    browser._navigating(lambda: browser.driver.switch_to.active_element.send_keys("\ue007"))  # Enter
    assert "Backup creado" in browser.find(".message.success").text

    with schema_context("alfa"):
        record = BackupRecord.objects.get(status="succeeded")
    browser.find(f"tr[data-backup-id='{record.pk}']").find_element("link text", "Descargar").click()
    browser.downloaded_file(record.file_name)
    browser.open(site.url(alfa.domain, PAGE))
    browser.click_button("Crear backup")  # a second manual backup: the first can now be deleted
    long_reason = "psql falló: " + "ERROR:relation_" * 12 + " no existe"
    with schema_context("alfa"):
        BackupRecord.objects.create(
            file_name="", backup_type="automatic", status="failed", error=long_reason, created_at=timezone.now()
        )
        BackupRestore.objects.create(
            source="upload",
            backup_file_name=record.file_name,
            uploaded_file_name="copia-descargada-de-la-clinica-alfa-en-noviembre.sql",
            requested_by=alfa.admin,
            status="failed",
            error=long_reason,
            started_at=timezone.now(),
            finished_at=timezone.now(),
        )
        job = BackupJob.objects.create(kind="backup", status="failed", error=long_reason, requested_by=alfa.admin)

    pages = [PAGE, f"{PAGE}restaurar-archivo/", f"{PAGE}{record.pk}/restaurar/", f"{PAGE}{record.pk}/eliminar/"]
    pages += [f"{PAGE}tareas/{job.pk}/", f"{PAGE}entrar/"]
    for path in pages:
        browser.open(site.url(alfa.domain, path))
        width = browser.driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360, f"{path}: la página mide {width} px de ancho"
        # Nothing hidden sideways inside a scrolling box either: every table reads at 360 px.
        cut = browser.driver.execute_script(
            "return [...document.querySelectorAll('.table-scroll')]"
            ".filter(e => e.scrollWidth > e.clientWidth).map(e => e.getAttribute('aria-labelledby'))"
        )
        assert cut == [], f"{path}: tablas más anchas que la pantalla {cut}"
        # Each row is a card of labelled cells: what a cell holds sits beside its label, never under it.
        misplaced = browser.driver.execute_script(
            "return [...document.querySelectorAll('td[data-label] > *')]"
            ".filter(e => e.getBoundingClientRect().left < e.parentElement.getBoundingClientRect().left + 100)"
            ".map(e => e.parentElement.dataset.label + ': ' + e.textContent.trim())"
        )
        assert misplaced == [], f"{path}: contenido bajo la etiqueta de su celda {misplaced}"
        unlabelled = browser.driver.execute_script(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, progress')]"
            ".filter(e => !e.labels || e.labels.length === 0).map(e => e.name || e.id)"
        )
        assert unlabelled == [], f"{path}: controles sin etiqueta {unlabelled}"
