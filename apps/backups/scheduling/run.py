"""One run of the automatic backups (``manage.py run_scheduled_backups``).

Due clinics are chosen with one query (``backups_due``); each is claimed for
its slot (``scheduling_claims``) and backed up with ``backup_create``. A failure
is recorded on the clinic (consecutive failures, error, next retry time with
exponential back-off) and logged, and the run goes on with the others.
``workers`` > 1 backs up several clinics at once, one thread and one database
connection each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, connections
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.alerts import backup_failure_alert, backup_recovery_alert
from apps.backups.engine.pg_messages import pg_values_removed
from apps.backups.engine.progress import Progress
from apps.backups.errors import BackupError, BackupInterruptedError, ClinicBusyError, ScheduleInFutureError
from apps.backups.interrupts import stop_requested
from apps.backups.models import BackupRecord
from apps.backups.scheduling.claims import LeaseKeeper, slot_claim, slot_finish, slot_release, worker_name
from apps.backups.scheduling.rules import DISABLED, SCHEDULED, backup_due_slot, retry_delay
from apps.backups.scheduling.selectors import DueBackup, backups_due
from apps.backups.services import backup_create
from apps.tenants.models import Clinic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledOutcome:
    due: DueBackup
    status: str  # "succeeded" | "failed" | "skipped"
    record: BackupRecord | None = None
    error: str = ""
    failures: int = 0
    retry_at: datetime | None = None
    busy: bool = False  # skipped: a restore, drill or recovery held the clinic


OnStart = Callable[[DueBackup], None]
OnDone = Callable[[ScheduledOutcome], None]


def scheduled_backups_run(
    *, now: datetime | None = None, workers: int = 1, on_start: OnStart | None = None, on_done: OnDone | None = None
) -> list[ScheduledOutcome]:
    """Back up every clinic due at ``now`` (default: the current time) once for its slot.

    ``on_start``/``on_done`` are called (from worker threads when ``workers`` > 1)
    as each clinic's backup starts and ends; skipped clinics (another worker has
    the slot) only reach ``on_done``. A ``now`` in the future is refused: a real
    backup made today must not use up (and record) a slot that has not started;
    ``scheduled_backups_preview`` shows what such a run would do.
    """
    current = timezone.now()
    if now is not None and now > current:
        raise ScheduleInFutureError(now)
    now = now or current
    due = backups_due(now=now)

    def perform(item: DueBackup) -> ScheduledOutcome:
        outcome = scheduled_backup_perform(due=item, now=now, on_start=on_start)
        if on_done:
            on_done(outcome)
        return outcome

    if workers <= 1 or len(due) <= 1:
        outcomes = [perform(item) for item in due]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup") as pool:
            outcomes = list(pool.map(_in_own_connection(perform), due))
    return outcomes


def scheduled_backups_preview(*, now: datetime | None = None) -> list[DueBackup]:
    """What a run at ``now`` (any instant, future included) would back up; nothing is claimed or changed."""
    return backups_due(now=now or timezone.now())


def _in_own_connection(function):
    """Worker threads get their own connections from Django (the default one and
    the backup reader); close them all when done."""

    def wrapper(item):
        try:
            return function(item)
        finally:
            connections.close_all()

    return wrapper


def scheduled_backup_perform(*, due: DueBackup, now: datetime, on_start: OnStart | None = None) -> ScheduledOutcome:
    """Claim ``due``'s slot and back the clinic up; never raises for a failing clinic."""
    if stop_requested():
        return ScheduledOutcome(due=due, status="skipped", error=str(BackupInterruptedError()))
    connection.set_schema_to_public()
    worker = worker_name()
    claim_id = slot_claim(clinic_id=due.clinic_id, slot=due.slot, now=now, worker=worker)
    if claim_id is None:
        logger.debug("%s: el turno %s lo tiene otro proceso.", due.name, due.slot)
        return ScheduledOutcome(due=due, status="skipped", error="Otro proceso ya tiene este turno.")
    return claimed_backup_perform(due=due, now=now, claim_id=claim_id, worker=worker, on_start=on_start)


def claimed_backup_perform(
    *,
    due: DueBackup,
    now: datetime,
    claim_id: int,
    worker: str,
    on_start: OnStart | None = None,
    progress: Progress | None = None,
) -> ScheduledOutcome:
    """Back up a clinic whose slot this worker holds (claimed here, or taken over
    from the queue: ``apps.backups.jobs``), keeping the claim's lease alive meanwhile."""
    with LeaseKeeper(claim_id=claim_id, worker=worker):
        clinic = Clinic.objects.filter(pk=due.clinic_id).first()
        if clinic is None or _still_due_slot(clinic, now) != due.slot:
            slot_release(claim_id=claim_id)  # schedule changed since the due query
            return ScheduledOutcome(due=due, status="skipped", error="Ya no corresponde.")
        record = _slot_already_backed_up(clinic, due.slot)
        if record is None:
            if on_start:
                on_start(due)
            try:
                record = backup_create(clinic=clinic, backup_type="automatic", progress=progress)
            except (BackupInterruptedError, ClinicBusyError) as error:
                # Stopping, or a restore/drill/recovery holds the clinic: not the clinic's
                # fault, so no back-off; the slot is given back and the next run takes it.
                slot_release(claim_id=claim_id)
                busy = isinstance(error, ClinicBusyError)
                return ScheduledOutcome(due=due, status="skipped", error=str(error), busy=busy)
            except Exception as error:  # any failure of one clinic must not stop the run
                return _failed(clinic=clinic, due=due, now=now, claim_id=claim_id, error=error)
            with schema_context(clinic.schema_name):
                BackupRecord.objects.filter(pk=record.pk).update(schedule_slot=due.slot)
            record.schedule_slot = due.slot
        _succeeded(clinic=clinic, due=due, now=now)
        slot_finish(claim_id=claim_id, succeeded=True)
    backup_recovery_alert(clinic=clinic, now=now)
    return ScheduledOutcome(due=due, status="succeeded", record=record)


def _still_due_slot(clinic: Clinic, now: datetime) -> str | None:
    due = backup_due_slot(
        schedule=clinic.backup_schedule,
        time_zone=clinic.time_zone,
        last_backup_at=clinic.last_backup_at,
        next_scheduled_backup=clinic.next_scheduled_backup,
        now=now,
    )
    return due.slot if due else None


def _slot_already_backed_up(clinic: Clinic, slot: str) -> BackupRecord | None:
    """A worker that died after its backup succeeded but before recording it on
    the clinic: the backup exists, so the slot is done without a second one."""
    with schema_context(clinic.schema_name):
        return BackupRecord.objects.filter(schedule_slot=slot, status=BackupRecord.Status.SUCCEEDED).first()


def _succeeded(*, clinic: Clinic, due: DueBackup, now: datetime) -> None:
    # Greatest: a run with an older ``now`` never moves last_backup_at back.
    Clinic.objects.filter(pk=clinic.pk).update(
        last_backup_at=Greatest(F("last_backup_at"), Value(now)),
        backup_failures=0,
        backup_retry_at=None,
        backup_last_error="",
        backup_last_attempt_at=now,
    )
    if due.schedule == SCHEDULED:
        # Only the one-off that ran: a new date set meanwhile stays scheduled.
        Clinic.objects.filter(
            pk=clinic.pk, backup_schedule=SCHEDULED, next_scheduled_backup=clinic.next_scheduled_backup
        ).update(backup_schedule=DISABLED, next_scheduled_backup=None)


def _failed(*, clinic: Clinic, due: DueBackup, now: datetime, claim_id: int, error: Exception) -> ScheduledOutcome:
    message = str(error) if isinstance(error, BackupError) else pg_values_removed(f"Error inesperado: {error!r}")
    logger.error("[AutoBackup] Error crítico en %s: %s", clinic.name, message)
    connection.set_schema_to_public()
    failures = clinic.backup_failures + 1
    retry_at = now + retry_delay(failures)
    # The clinic's back-off first, then the claim: a worker that sees the claim
    # failed also sees the retry time.
    Clinic.objects.filter(pk=clinic.pk).update(
        backup_failures=failures, backup_retry_at=retry_at, backup_last_error=message, backup_last_attempt_at=now
    )
    slot_finish(claim_id=claim_id, succeeded=False, error=message)
    backup_failure_alert(clinic=clinic, failures=failures, error=message, retry_at=retry_at, now=now)
    return ScheduledOutcome(due=due, status="failed", error=message, failures=failures, retry_at=retry_at)
