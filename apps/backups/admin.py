"""The platform's Django admin (public domain only): the fleet of clinics' backups.

Backup, download and restore records live in each clinic's own schema, so they
are shown per clinic from the fleet page (read-only), not as admin models of
the public schema.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.models import BackupDownload, BackupRecord, BackupRestore
from apps.backups.monitoring.fleet import FLEET_ACTIONS, STATES, fleet_action_run, fleet_rows
from apps.backups.selectors import schemas_with_backup_table
from apps.tenants.models import Clinic, ClinicBackupState
from apps.tenants.selectors import clinics_for_backup

RECORDS_SHOWN = 200


@admin.register(ClinicBackupState)
class ClinicBackupStateAdmin(admin.ModelAdmin):
    """Not a model form: a page over ``backup_status``, with actions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path("", self.admin_site.admin_view(self.fleet_view), name=f"{prefix}_changelist"),
            path("<str:schema>/registros/", self.admin_site.admin_view(self.records_view), name=f"{prefix}_records"),
        ]

    def fleet_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._run_action(request)
        schedule = request.GET.get("schedule", "")
        state = request.GET.get("state", "")
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Estado de backups de las clínicas",
            "rows": fleet_rows(now=now, schedule=schedule, state=state),
            "now": now,
            "schedules": Clinic.BackupSchedule.choices,
            "states": STATES.items(),
            "schedule": schedule,
            "state": state,
            "actions": [(key, action.label) for key, action in FLEET_ACTIONS.items()],
        }
        return TemplateResponse(request, "admin/backups/fleet.html", context)

    def _run_action(self, request):
        action = request.POST.get("action", "")
        schemas = request.POST.getlist("schemas")
        back = HttpResponseRedirect(request.get_full_path())
        if action not in FLEET_ACTIONS:
            self.message_user(request, "Elige una acción.", messages.WARNING)
            return back
        clinic_ids = list(clinics_for_backup().filter(schema_name__in=schemas).values_list("pk", flat=True))
        if not clinic_ids:
            self.message_user(request, "Selecciona al menos una clínica.", messages.WARNING)
            return back
        for result in fleet_action_run(action=action, clinic_ids=clinic_ids):
            self.message_user(request, result.message, messages.SUCCESS if result.ok else messages.ERROR)
        return back

    def records_view(self, request, schema: str):
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        clinic = clinics_for_backup().filter(schema_name=schema).first()
        if clinic is None:
            raise Http404("Clínica desconocida.")
        records, restores, downloads = [], [], []
        if schema in schemas_with_backup_table():
            with schema_context(clinic.schema_name):
                records = list(BackupRecord.objects.select_related("created_by")[:RECORDS_SHOWN])
                restores = list(BackupRestore.objects.select_related("requested_by")[:RECORDS_SHOWN])
                downloads = list(BackupDownload.objects.select_related("backup", "user")[:RECORDS_SHOWN])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Backups de {clinic.name}",
            "clinic": clinic,
            "records": records,
            "restores": restores,
            "downloads": downloads,
            "fleet_url": reverse("admin:tenants_clinicbackupstate_changelist"),
        }
        return TemplateResponse(request, "admin/backups/records.html", context)
