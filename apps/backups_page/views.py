"""The clinic administrator's backups page (``/backups/`` on the clinic's domain).

Thin views over the same services as the API: ``backup_create``,
``backup_download_response``, ``backup_restore``/``upload_restore``,
``manual_backup_delete``, ``clinic_backup_config_update``.

Create and restore: with a broker configured (``CELERY_BROKER_URL``; ``make
serve`` sets it to the project-local Redis) they are jobs (``apps.backups.jobs``)
and the page goes to the job's own page, which shows its progress live (it polls
``tareas/<id>/estado/``, the API's job shape; without JavaScript the page
reloads itself). Without a broker they run in the request, the form showing a
busy state while they do.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.core.exceptions import ImproperlyConfigured
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_tenants.utils import tenant_context

from apps.backups.api.responses import backup_download_response
from apps.backups.api.serializers import BackupJobSerializer
from apps.backups.api.uploads import upload_space_guard
from apps.backups.errors import BackupError, UploadSpaceError
from apps.backups.jobs.models import BackupJob
from apps.backups.jobs.progress import PHASE_LABELS
from apps.backups.jobs.services import backup_job_start, restore_job_start
from apps.backups.models import BackupDownload, BackupRecord, BackupRestore
from apps.backups.restore.swap import backup_restore, upload_backup_match, upload_restore, upload_size_check
from apps.backups.scheduling.selectors import clinic_next_backup_at
from apps.backups.services import backup_create, backup_get_available, manual_backup_delete, newest_good_backup_id
from apps.backups.storage import get_backup_storage
from apps.backups_page.access import clinic_admin_json, clinic_admin_page, refusal
from apps.backups_page.forms import (
    DestructiveConfirmForm,
    RestoreConfirmForm,
    ScheduleForm,
    SignInForm,
    UploadRestoreForm,
)
from apps.tenants.services import ScheduleError, clinic_backup_config_update

logger = logging.getLogger(__name__)
RECENT_ROWS = 20
CONFIG_ERROR = "El sistema de backups no está bien configurado; avisa al operador de la plataforma."


def _error_text(error: Exception) -> str:
    """What the clinic admin reads: a server fault's plain message (its detail is
    in the server log), a configuration error's hint, otherwise the error itself."""
    if isinstance(error, ImproperlyConfigured):
        return CONFIG_ERROR
    return getattr(error, "public_message", None) or str(error)


def _failure_status(error: Exception | None) -> int:
    """A form refused for the admin's input, or an operation refused (busy,
    not available), is a 400; a server fault keeps its 5xx (as in the API)."""
    code = getattr(error, "status_code", 400)
    return code if code >= 500 else 400


def jobs_enabled() -> bool:
    """Long operations go through the job queue: a broker is configured."""
    return settings.CELERY_BROKER_CONFIGURED


def _record_or_404(pk: int) -> BackupRecord:
    try:
        return BackupRecord.objects.select_related("created_by").get(pk=pk)
    except BackupRecord.DoesNotExist:
        raise Http404("No hay un backup con ese id en esta clínica.") from None


class SignInView(LoginView):
    template_name = "backups_page/sign_in.html"
    form_class = SignInForm
    redirect_authenticated_user = False

    def dispatch(self, request, *args, **kwargs):
        if request.tenant.schema_name == settings.PUBLIC_SCHEMA_NAME:
            raise Http404
        return super().dispatch(request, *args, **kwargs)

    def get_default_redirect_url(self):
        return reverse("backups_page:index")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["clinic"] = self.request.tenant
        context["after_restore"] = self.request.GET.get("motivo") == "restauracion"
        return context


@require_POST
def sign_out(request):
    logout(request)
    return redirect("backups_page:sign_in")


def _index_context(request, *, schedule_form: ScheduleForm | None = None) -> dict:
    clinic = request.tenant
    records = BackupRecord.objects.select_related("created_by")
    page = Paginator(records, settings.BACKUPS_PAGE_SIZE).get_page(request.GET.get("pagina"))
    if schedule_form is None:
        schedule_form = ScheduleForm(
            initial={"backup_schedule": clinic.backup_schedule, "next_scheduled_backup": clinic.next_scheduled_backup}
        )
    return {
        "clinic": clinic,
        "page": page,
        "newest_good_id": newest_good_backup_id(),
        "schedule_form": schedule_form,
        "next_run_at": clinic_next_backup_at(clinic=clinic, now=timezone.now()),
        "restores": BackupRestore.objects.select_related("requested_by")[:RECENT_ROWS],
        "downloads": BackupDownload.objects.select_related("user", "backup")[:RECENT_ROWS],
        "keep_days": settings.BACKUP_RESTORE_KEEP_DAYS,
        "jobs_enabled": jobs_enabled(),
        "active_jobs": BackupJob.objects.select_related("requested_by").filter(
            status__in=[BackupJob.Status.QUEUED, BackupJob.Status.RUNNING]
        )[:RECENT_ROWS],
    }


@require_GET
@clinic_admin_page
def index(request):
    return render(request, "backups_page/index.html", _index_context(request))


@require_POST
@clinic_admin_page
def create(request):
    if jobs_enabled():
        try:
            job = backup_job_start(clinic=request.tenant, user=request.user, max_size=settings.MAX_BACKUP_SIZE)
        except (BackupError, ImproperlyConfigured) as error:
            messages.error(request, f"El backup no se pudo crear: {_error_text(error)}")
            return redirect("backups_page:index")
        return redirect("backups_page:job", pk=job.pk)
    try:
        record = backup_create(
            clinic=request.tenant, backup_type="manual", user=request.user, max_size=settings.MAX_BACKUP_SIZE
        )
    except (BackupError, ImproperlyConfigured) as error:
        messages.error(request, f"El backup no se pudo crear: {_error_text(error)}")
    else:
        storage = get_backup_storage().label
        messages.success(request, f"Backup creado y subido a {storage}: {record.file_name}")
    return redirect("backups_page:index")


@require_GET
@clinic_admin_page
def download(request, pk: int):
    record = _record_or_404(pk)
    try:
        return backup_download_response(request, backup_get_available(backup_id=record.pk))
    except (BackupError, ImproperlyConfigured) as error:
        messages.error(request, f"No se pudo descargar {record.file_name}: {_error_text(error)}")
        return redirect("backups_page:index")


@require_POST
@clinic_admin_page
def schedule(request):
    clinic = request.tenant
    form = ScheduleForm(request.POST)
    if form.is_valid():
        try:
            clinic_backup_config_update(
                clinic=clinic,
                backup_schedule=form.cleaned_data["backup_schedule"],
                next_scheduled_backup=form.cleaned_data["next_scheduled_backup"],
            )
        except ScheduleError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Programación guardada.")
            return redirect(reverse("backups_page:index") + "#programacion")
    context = _index_context(request, schedule_form=form)
    return render(request, "backups_page/index.html", context, status=400)


def _restored(request, restore: BackupRestore):
    """The result page. The session ends here, as every session from before the restore."""
    logout(request)
    context = {"clinic": request.tenant, "restore": restore, "keep_days": settings.BACKUP_RESTORE_KEEP_DAYS}
    return render(request, "backups_page/restored.html", context)


def _restore_run(request, run):
    """Run a restore in the clinic's context (the restore switches the connection
    to public while it works; the session must be saved back in the clinic)."""
    with tenant_context(request.tenant):
        return run()


@require_http_methods(["GET", "POST"])
@clinic_admin_page
def restore_confirm(request, pk: int):
    record = _record_or_404(pk)
    if record.status != BackupRecord.Status.SUCCEEDED:
        messages.error(request, "Este backup no está disponible: no se completó correctamente.")
        return redirect("backups_page:index")
    form = RestoreConfirmForm(request.POST or None, request=request)
    status = 200
    if request.method == "POST":
        failure = None
        if form.is_valid() and jobs_enabled():
            try:
                job = restore_job_start(clinic=request.tenant, record=record, user=request.user)
            except (BackupError, ImproperlyConfigured) as error:
                failure = error
                form.add_error(None, f"No se restauró nada: {_error_text(error)}")
            else:
                logger.info("Restauración pedida desde la página por %s (%s)", request.user.email, record.file_name)
                return redirect("backups_page:job", pk=job.pk)
        elif form.is_valid():
            try:
                restore = _restore_run(
                    request, lambda: backup_restore(clinic=request.tenant, record=record, user=request.user)
                )
            except (BackupError, ImproperlyConfigured) as error:
                failure = error
                form.add_error(None, f"No se restauró nada: {_error_text(error)}")
            else:
                logger.info("Clínica restaurada desde la página por %s (%s)", request.user.email, record.file_name)
                return _restored(request, restore)
        status = _failure_status(failure)
    context = {"clinic": request.tenant, "record": record, "form": form, "keep_days": settings.BACKUP_RESTORE_KEEP_DAYS}
    return render(request, "backups_page/restore_confirm.html", context, status=status)


@csrf_exempt  # checked below, once the declared size is known to be acceptable
@require_http_methods(["GET", "POST"])
@clinic_admin_page
def restore_upload(request):
    status = 200
    form = None
    refused = ""
    if request.method == "POST":
        try:
            upload_size_check(request.META.get("CONTENT_LENGTH"))  # before the body is read
        except BackupError as error:
            refused, status = str(error), 400
        else:
            try:
                with upload_space_guard(request):  # the CSRF check reads the body first
                    rejected = CsrfViewMiddleware(lambda _request: None).process_view(request, None, (), {})
                    files = request.FILES
            except UploadSpaceError as error:
                return _upload_page(request, form=None, refused=str(error), status=error.status_code)
            if rejected is not None:
                return rejected
            form = UploadRestoreForm(request.POST, files, request=request)
            failure = None
            if form.is_valid() and jobs_enabled():
                uploaded = form.cleaned_data["file"]
                try:
                    # Checked here; the worker restores from the stored backup it is identical to.
                    record, sha256 = upload_backup_match(clinic=request.tenant, uploaded_file=uploaded)
                    job = restore_job_start(
                        clinic=request.tenant,
                        record=record,
                        user=request.user,
                        uploaded_file_name=uploaded.name or "",
                        uploaded_sha256=sha256,
                    )
                except (BackupError, ImproperlyConfigured) as error:
                    failure = error
                    form.add_error(None, f"No se restauró nada: {_error_text(error)}")
                else:
                    logger.info("Restauración pedida desde un archivo por %s (%s)", request.user.email, uploaded.name)
                    return redirect("backups_page:job", pk=job.pk)
            elif form.is_valid():
                uploaded = form.cleaned_data["file"]
                try:
                    restore = _restore_run(
                        request,
                        lambda: upload_restore(clinic=request.tenant, uploaded_file=uploaded, user=request.user),
                    )
                except (BackupError, ImproperlyConfigured) as error:
                    failure = error
                    form.add_error(None, f"No se restauró nada: {_error_text(error)}")
                else:
                    logger.info("Clínica restaurada desde un archivo por %s (%s)", request.user.email, uploaded.name)
                    return _restored(request, restore)
            status = _failure_status(failure)
    return _upload_page(request, form=form, refused=refused, status=status)


def _upload_page(request, *, form: UploadRestoreForm | None, refused: str, status: int):
    context = {
        "clinic": request.tenant,
        "form": form or UploadRestoreForm(request=request),
        "keep_days": settings.BACKUP_RESTORE_KEEP_DAYS,
        "max_upload": settings.MAX_RESTORE_UPLOAD_SIZE,
        "refused": refused,
    }
    return render(request, "backups_page/restore_upload.html", context, status=status)


@require_http_methods(["GET", "POST"])
@clinic_admin_page
def delete_confirm(request, pk: int):
    record = _record_or_404(pk)
    form = DestructiveConfirmForm(request.POST or None, request=request)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                manual_backup_delete(clinic=request.tenant, backup_id=record.pk, user=request.user)
            except (BackupError, ImproperlyConfigured) as error:
                form.add_error(None, f"No se eliminó: {_error_text(error)}")
            else:
                messages.success(request, f"Backup eliminado: {record.file_name or f'registro {record.pk}'}")
                return redirect("backups_page:index")
        status = 400
    context = {"clinic": request.tenant, "record": record, "form": form}
    return render(request, "backups_page/delete_confirm.html", context, status=status)


TITLES = {
    BackupJob.Kind.BACKUP: "Backup de la clínica",
    BackupJob.Kind.RESTORE: "Restauración de la clínica",
    BackupJob.Kind.DRILL: "Simulacro de restauración",
    BackupJob.Kind.RECOVERY: "Recuperación desde el almacenamiento",
}


def _job_or_404(pk: int) -> BackupJob:
    try:
        return BackupJob.objects.select_related("requested_by", "backup__created_by", "restore").get(pk=pk)
    except BackupJob.DoesNotExist:
        raise Http404("No hay una tarea con ese id en esta clínica.") from None


def job_state(job: BackupJob) -> dict:
    """The job as the API shows it (``GET /api/backups/jobs/<id>/``), with its
    status and phase in words for the page."""
    return {
        **BackupJobSerializer(job).data,
        "status_label": job.get_status_display(),
        "phase_label": PHASE_LABELS.get(job.phase, job.phase),
    }


@require_GET
@clinic_admin_page
def job_page(request, pk: int):
    """A job's page: its progress, live (``page.js`` polls ``job_status``)."""
    job = _job_or_404(pk)
    context = {
        "clinic": request.tenant,
        "job": job,
        "state": job_state(job),
        "title": TITLES.get(job.kind, "Tarea"),
        "keep_days": settings.BACKUP_RESTORE_KEEP_DAYS,
    }
    return render(request, "backups_page/job.html", context)


@require_GET
@clinic_admin_json
def job_status(request, pk: int):
    """The job's state as JSON, for the job page's polling."""
    try:
        job = BackupJob.objects.select_related("requested_by", "backup__created_by", "restore").get(pk=pk)
    except BackupJob.DoesNotExist:
        return JsonResponse({"error": "No encontrado."}, status=404)
    return JsonResponse(job_state(job))


def csrf_failure(request, reason: str = ""):
    """Django's CSRF refusal, in Spanish and in the page's style."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"error": "Falta el token CSRF o no es válido."}, status=403)
    return refusal(
        request,
        title="Formulario caducado",
        message="El formulario caducó o no se envió desde esta página. Vuelve a cargar la página e inténtalo de nuevo.",
    )
