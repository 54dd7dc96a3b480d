"""The platform operator's fleet view: every clinic's backup state, worst first,
and the actions run on selected clinics from the Django admin.

Each action is a function of a clinic id only (``FleetAction.run(clinic_id=…)``),
returning a plain result. With a broker configured (``CELERY_BROKER_URL``) the
admin only queues them as jobs (``FleetAction.queue``), one per clinic, so no
request waits for a backup or a drill; without one it runs them in the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from apps.backups.errors import BackupError
from apps.backups.monitoring.status import ClinicBackupStatus, backup_status_list, clinics_overdue
from apps.tenants.models import Clinic

STATES = {
    "overdue": "Atrasadas",
    "failing": "Fallando",
    "ok": "Al día",
    "disabled": "Sin programación",
}


@dataclass(frozen=True)
class FleetRow:
    status: ClinicBackupStatus
    overdue: bool
    failing: bool
    missing_since: datetime | None
    last_error: str

    @property
    def state(self) -> str:
        if self.overdue:
            return "overdue"
        if self.failing:
            return "failing"
        return "disabled" if self.status.backup_schedule == "disabled" else "ok"


def fleet_rows(*, now: datetime | None = None, schedule: str = "", state: str = "") -> list[FleetRow]:
    """Every clinic's backup state (``backup_status``), overdue and failing clinics first."""
    now = now or timezone.now()
    _checked, overdue = clinics_overdue(now=now)
    overdue_since = {clinic.schema_name: clinic.due_since for clinic in overdue}
    errors = dict(Clinic.objects.values_list("schema_name", "backup_last_error"))
    rows = [
        FleetRow(
            status=status,
            overdue=status.schema_name in overdue_since,
            failing=status.consecutive_failures > 0 or status.last_backup_status == "failed",
            missing_since=overdue_since.get(status.schema_name),
            last_error=errors.get(status.schema_name, ""),
        )
        for status in backup_status_list(now=now)
    ]
    if schedule:
        rows = [row for row in rows if row.status.backup_schedule == schedule]
    if state:
        rows = [row for row in rows if row.state == state]
    rows.sort(key=lambda row: (not row.overdue, not row.failing, row.status.name.lower()))
    return rows


@dataclass(frozen=True)
class FleetJobResult:
    schema_name: str
    ok: bool
    message: str


def fleet_backup_now(*, clinic_id: int) -> FleetJobResult:
    """A manual backup of one clinic, as ``backup_clinics`` makes it."""
    from apps.backups.services import backup_create

    clinic = Clinic.objects.get(pk=clinic_id)
    try:
        record = backup_create(clinic=clinic, backup_type="manual")
    except BackupError as error:
        return FleetJobResult(clinic.schema_name, False, f"{clinic.name}: el backup falló: {error}")
    return FleetJobResult(clinic.schema_name, True, f"{clinic.name}: backup {record.file_name} hecho.")


def fleet_restore_drill(*, clinic_id: int) -> FleetJobResult:
    """A restore drill of one clinic's newest stored backup (the live clinic is not touched)."""
    from apps.backups.restore.recovery import restore_drill

    clinic = Clinic.objects.get(pk=clinic_id)
    result = restore_drill(clinic=clinic)
    if result.passed:
        return FleetJobResult(
            clinic.schema_name, True, f"{clinic.name}: {result.file_name} se restaura y cuadra con su manifiesto."
        )
    detail = result.error or f"{len(result.mismatches)} tabla(s) no cuadran con el manifiesto"
    return FleetJobResult(clinic.schema_name, False, f"{clinic.name}: el simulacro falló: {detail}")


def _backup_job_start(clinic: Clinic):
    from apps.backups.jobs.services import backup_job_start

    return backup_job_start(clinic=clinic)


def _drill_job_start(clinic: Clinic):
    from apps.backups.jobs.services import drill_job_start

    return drill_job_start(clinic=clinic)


@dataclass(frozen=True)
class FleetAction:
    label: str
    run: Callable[..., FleetJobResult]
    queue: Callable[[Clinic], object]  # the job that does ``run`` on a worker


FLEET_ACTIONS = {
    "backup_now": FleetAction("Hacer backup ahora", fleet_backup_now, _backup_job_start),
    "restore_drill": FleetAction("Ejecutar simulacro de restauración", fleet_restore_drill, _drill_job_start),
}


def fleet_action_run(*, action: str, clinic_ids: list[int]) -> list[FleetJobResult]:
    """``action`` for each clinic: queued as one job per clinic when a broker is
    configured, otherwise run here, one after the other."""
    chosen = FLEET_ACTIONS[action]
    if not settings.CELERY_BROKER_CONFIGURED:
        return [chosen.run(clinic_id=clinic_id) for clinic_id in clinic_ids]
    return [_queued(chosen, Clinic.objects.get(pk=clinic_id)) for clinic_id in clinic_ids]


def _queued(action: FleetAction, clinic: Clinic) -> FleetJobResult:
    try:
        job = action.queue(clinic)
    except BackupError as error:  # the clinic busy (nothing queued), or the broker down
        return FleetJobResult(clinic.schema_name, False, f"{clinic.name}: no se puso en cola: {error}")
    return FleetJobResult(
        clinic.schema_name, True, f"{clinic.name}: en cola (tarea {job.pk}); su resultado, en sus registros."
    )
