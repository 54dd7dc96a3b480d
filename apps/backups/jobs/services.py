"""Starting jobs (API, commands, scheduler) and running them (Celery tasks).

A job is a ``BackupJob`` row in the clinic's schema, created ``queued`` before
its message is sent, so it is visible at once. The worker's task runs it:
``running`` (with progress), then ``succeeded`` or ``failed`` with the error
for the admin. The work itself is the existing services (``backup_create``,
``backup_restore``, ``restore_drill``, ``clinic_recover_from_storage``), run
in the clinic's schema with an explicit ``schema_context``.

A message can be delivered twice (a worker killed mid-task, with ``acks_late``):
a job already finished is not run again; a backup interrupted that way is run
once more (making a backup twice is harmless; a scheduled slot is guarded by
its claim); an interrupted restore, drill or recovery is marked failed rather
than repeated behind the admin's back (a restore is atomic: the clinic is as
before, or restored).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from apps.backups.engine.naming import validate_schema_name
from apps.backups.errors import BackupError, ClinicBusyError, ScheduleInFutureError
from apps.backups.jobs.models import BackupJob
from apps.backups.jobs.progress import JobProgress
from apps.backups.locking import OPERATIONS, clinic_lock
from apps.backups.models import BackupRecord
from apps.tenants.models import Clinic

logger = logging.getLogger(__name__)

Kind = BackupJob.Kind
Status = BackupJob.Status
RECENT_JOBS = 50
INTERRUPTED = (
    "Interrumpida: el proceso que la ejecutaba terminó antes de acabar. "
    "La clínica quedó como estaba o ya restaurada (mira su historial); vuelve a intentarlo si hace falta."
)


class JobQueueError(BackupError):
    """The job could not be sent to the queue (broker down or misconfigured)."""

    status_code = 503


# Sending ---------------------------------------------------------------------------


def broker_url() -> str:
    """``CELERY_BROKER_URL``, or the project-local Redis, started if needed."""
    if settings.CELERY_BROKER_CONFIGURED:
        return settings.CELERY_BROKER_URL
    from config import embedded_redis

    data_dir, port = embedded_redis.configured_location()
    return embedded_redis.ensure_running(data_dir, port)


@contextmanager
def broker_connection() -> Iterator:
    """One broker connection for many messages (the scheduler enqueues a whole night)."""
    from config.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        yield None
        return
    with app.connection_for_write(broker_url()) as conn:
        yield conn


def _send(task, args: list, *, conn=None) -> str:
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Runs here, now (tests of the API's shape); the caller's schema is kept.
        with schema_context(connection.schema_name):
            return task.apply(args=args).id
    try:
        if conn is None:
            with broker_connection() as own:
                return task.apply_async(args=args, connection=own).id
        return task.apply_async(args=args, connection=conn).id
    except (OperationalError, OSError, RedisError, RuntimeError) as error:
        # RuntimeError: Celery's result store client gives up reconnecting with one.
        logger.error("No se pudo encolar %s: %s", task.name, error)
        raise JobQueueError(
            "No se pudo poner la tarea en cola: el broker de tareas (Redis) no responde. Inténtalo más tarde."
        ) from None


def _enqueue(*, schema_name: str, job: BackupJob, task, args: list, conn=None) -> BackupJob:
    try:
        task_id = _send(task, args, conn=conn)
    except JobQueueError as error:
        _job_finish(schema_name, job.pk, status=Status.FAILED, error=str(error))
        raise
    with schema_context(schema_name):
        BackupJob.objects.filter(pk=job.pk).update(task_id=task_id or "")
        return BackupJob.objects.select_related("requested_by", "backup", "restore").get(pk=job.pk)


def job_create(*, clinic, kind: str, user=None, params: dict | None = None, schedule_slot: str = "") -> BackupJob:
    with schema_context(clinic.schema_name):
        return BackupJob.objects.create(kind=kind, requested_by=user, params=params or {}, schedule_slot=schedule_slot)


def backup_job_start(*, clinic, user=None, max_size: int | None = None) -> BackupJob:
    """A manual backup of ``clinic``, run by a worker. ``ClinicBusyError`` at once,
    nothing queued, while a restore, drill or recovery of the clinic runs."""
    from apps.backups.jobs import tasks

    _clinic_free_ensure(clinic.schema_name, operation="backup", shared=True)
    job = job_create(clinic=clinic, kind=Kind.BACKUP, user=user, params={"backup_type": "manual", "max_size": max_size})
    return _enqueue(
        schema_name=clinic.schema_name, job=job, task=tasks.backup_job_task, args=[clinic.schema_name, job.pk]
    )


def restore_job_start(
    *, clinic, record: BackupRecord, user=None, uploaded_file_name: str = "", uploaded_sha256: str = ""
) -> BackupJob:
    """Restore ``clinic`` from one of its succeeded backups, on a worker. An upload
    identical to a backup (``upload_backup_match``) restores from the stored
    backup: workers on other machines need nothing from this one.
    ``ClinicBusyError`` at once, nothing queued, while a backup, restore, drill
    or recovery of the clinic runs."""
    from apps.backups.jobs import tasks

    _clinic_free_ensure(clinic.schema_name, operation="restore")
    params = {"backup_id": record.pk, "uploaded_file_name": uploaded_file_name, "uploaded_sha256": uploaded_sha256}
    job = job_create(clinic=clinic, kind=Kind.RESTORE, user=user, params=params)
    return _enqueue(
        schema_name=clinic.schema_name, job=job, task=tasks.restore_job_task, args=[clinic.schema_name, job.pk]
    )


def _clinic_free_ensure(schema_name: str, *, operation: str, shared: bool = False) -> None:
    """Refuse at once (``ClinicBusyError``, 409), with nothing queued, what the
    job would be refused when it starts:

    - the clinic's lock is held by another process (a backup, restore, drill or
      recovery running anywhere): it is tried here and let go at once;
    - a restore, drill or recovery job of the clinic is already waiting in the
      queue (it holds nothing yet, but would run beside or right after this one).

    This is the admin's answer, not the exclusion itself: the worker takes the
    real lock when the job runs (``backup_create``/``backup_restore``/...), so a
    clinic taken in between still fails the job with the same message."""
    with clinic_lock(schema_name=schema_name, operation=operation, shared=shared):
        pass
    waiting = _exclusive_job_waiting(schema_name)
    if waiting is not None:
        raise ClinicBusyError(
            f"La clínica {schema_name} está ocupada: hay {OPERATIONS[waiting.kind]} en cola "
            f"(tarea {waiting.pk}). No se hizo nada; inténtalo de nuevo cuando termine."
        )


def _exclusive_job_waiting(schema_name: str) -> BackupJob | None:
    """A queued restore, drill or recovery of the clinic, unless queued so long ago
    (over ``BACKUP_JOB_VISIBILITY_TIMEOUT``) that its message must be lost.
    A running one holds the lock, which was just tried; one whose worker died
    holds nothing and is not waited for."""
    since = timezone.now() - timedelta(seconds=settings.BACKUP_JOB_VISIBILITY_TIMEOUT)
    with schema_context(schema_name):
        return (
            BackupJob.objects.filter(
                kind__in=[Kind.RESTORE, Kind.DRILL, Kind.RECOVERY], status=Status.QUEUED, created_at__gte=since
            )
            .order_by("created_at")
            .first()
        )


def drill_job_start(*, clinic) -> BackupJob:
    """A restore drill of ``clinic``, on a worker. ``ClinicBusyError`` at once,
    nothing queued, while the clinic is held or has a restore, drill or recovery queued."""
    from apps.backups.jobs import tasks

    _clinic_free_ensure(clinic.schema_name, operation="drill")
    job = job_create(clinic=clinic, kind=Kind.DRILL)
    return _enqueue(
        schema_name=clinic.schema_name, job=job, task=tasks.drill_job_task, args=[clinic.schema_name, job.pk]
    )


def recovery_job_start(*, schema_name: str, file_name: str | None = None) -> tuple[str, BackupJob | None]:
    """Disaster recovery of a clinic from the bucket, on a worker. The job row is
    created in the clinic's schema when it still exists; when the database lost
    it, the worker writes the row into the recovered schema at the end. Returns
    the task id and the job (or None)."""
    from apps.backups.jobs import tasks

    validate_schema_name(schema_name)
    clinic = Clinic.objects.filter(schema_name=schema_name).first()
    job = None
    if clinic is not None and schema_exists(schema_name):
        job = job_create(clinic=clinic, kind=Kind.RECOVERY, params={"file_name": file_name or ""})
    task_id = _send(tasks.recovery_job_task, [schema_name, file_name or "", job.pk if job else None])
    return task_id, job


def jobs_recent(*, limit: int = RECENT_JOBS):
    """The current clinic's latest jobs, newest first."""
    return BackupJob.objects.select_related("requested_by", "backup__created_by", "restore")[:limit]


# Running (on the worker) -----------------------------------------------------------


Work = Callable[[JobProgress], dict]


def _job_finish(schema_name: str, job_id: int, *, status: str, error: str = "", **fields) -> None:
    values = {"status": status, "error": error, "finished_at": timezone.now(), **fields}
    if status == Status.SUCCEEDED:
        values["phase"] = "done"
    with schema_context(schema_name):
        BackupJob.objects.filter(pk=job_id).update(**values)


def job_run(*, schema_name: str, job_id: int, work: Work, rerun_interrupted: bool = False) -> BackupJob | None:
    """Run ``work`` for a job: running → succeeded/failed. ``work`` returns the
    fields to record (``backup``, ``restore``, ``result``; ``error`` makes it failed)."""
    with schema_context(schema_name):
        job = BackupJob.objects.filter(pk=job_id).first()
        if job is None:
            logger.warning("La tarea %s de %s ya no existe; no se ejecuta.", job_id, schema_name)
            return None
        if job.is_finished:
            return job  # delivered again after it ended
        if job.status == Status.RUNNING and not rerun_interrupted:
            _job_finish(schema_name, job_id, status=Status.FAILED, error=INTERRUPTED)
            job.refresh_from_db()
            return job
        BackupJob.objects.filter(pk=job_id).update(
            status=Status.RUNNING,
            started_at=job.started_at or timezone.now(),
            attempts=job.attempts + 1,
            worker=f"{socket.gethostname()}:{os.getpid()}"[:120],
            error="",
        )
    progress = JobProgress(schema_name=schema_name, job_id=job_id)
    try:
        fields = work(progress)
    except BackupError as error:
        # A server fault's detail goes to the log; the clinic admin reads its plain message.
        if error.public_message:
            logger.error("Tarea %s de %s fallida: %s", job_id, schema_name, error)
        message = error.public_message or str(error)
        _job_finish(schema_name, job_id, status=Status.FAILED, error=message, **_progress_fields(progress))
    except Exception as error:
        logger.exception("Tarea %s de %s: error inesperado", job_id, schema_name)
        message = f"Error inesperado: {type(error).__name__}"
        _job_finish(schema_name, job_id, status=Status.FAILED, error=message, **_progress_fields(progress))
    else:
        error = fields.pop("error", "")
        status = Status.FAILED if error else Status.SUCCEEDED
        _job_finish(schema_name, job_id, status=status, error=error, **_progress_fields(progress), **fields)
    connection.set_schema_to_public()
    with schema_context(schema_name):
        return BackupJob.objects.filter(pk=job_id).first()


def _progress_fields(progress: JobProgress) -> dict:
    return {key: value for key, value in progress.values.items() if key != "phase"}


def _clinic(schema_name: str) -> Clinic:
    return Clinic.objects.get(schema_name=validate_schema_name(schema_name))


def backup_job_run(*, schema_name: str, job_id: int) -> BackupJob | None:
    from apps.backups.services import backup_create

    clinic = _clinic(schema_name)

    def work(progress: JobProgress) -> dict:
        with schema_context(schema_name):
            job = BackupJob.objects.select_related("requested_by").get(pk=job_id)
        record = backup_create(
            clinic=clinic,
            backup_type=job.params.get("backup_type") or "manual",
            user=job.requested_by,
            max_size=job.params.get("max_size"),
            progress=progress,
        )
        if job.requested_by is not None:
            logger.info("Backup (tarea %s) creado por %s", job_id, job.requested_by.email)
        return {"backup": record}

    # A backup whose worker died is made again: a second backup is harmless.
    return job_run(schema_name=schema_name, job_id=job_id, work=work, rerun_interrupted=True)


def restore_job_run(*, schema_name: str, job_id: int) -> BackupJob | None:
    from apps.backups.restore.swap import backup_restore
    from apps.backups.services import backup_get_available

    clinic = _clinic(schema_name)

    def work(progress: JobProgress) -> dict:
        with schema_context(schema_name):
            job = BackupJob.objects.select_related("requested_by").get(pk=job_id)
            record = backup_get_available(backup_id=job.params["backup_id"])
        rows = _manifest_rows(record)
        progress("verifying", bytes_done=0, bytes_total=record.file_size, rows_done=0, rows_total=rows)
        restore = backup_restore(
            clinic=clinic,
            record=record,
            user=job.requested_by,
            progress=progress,
            uploaded_file_name=job.params.get("uploaded_file_name") or "",
            uploaded_sha256=job.params.get("uploaded_sha256") or "",
        )
        progress(bytes_done=record.file_size, rows_done=rows)
        requested_by = job.requested_by.email if job.requested_by else "—"
        logger.info("Clínica %s restaurada por %s desde %s (tarea %s)", schema_name, requested_by, record, job_id)
        return {"restore": restore}

    return job_run(schema_name=schema_name, job_id=job_id, work=work)


def _manifest_rows(record: BackupRecord) -> int | None:
    """Rows in the backup, from its manifest (None when it cannot be read)."""
    from apps.backups.storage import get_backup_storage

    try:
        manifest = json.loads(get_backup_storage().read_bytes(record.manifest_path))
        return sum(manifest.get("row_counts", {}).values())
    except (BackupError, ValueError, AttributeError) as error:
        logger.warning("Manifiesto de %s ilegible: %s", record, error)
        return None


def drill_job_run(*, schema_name: str, job_id: int) -> BackupJob | None:
    from apps.backups.restore.recovery import restore_drill

    clinic = _clinic(schema_name)

    def work(progress: JobProgress) -> dict:
        result = restore_drill(clinic=clinic, progress=progress)
        summary = {
            "file_name": result.file_name,
            "passed": result.passed,
            "mismatches": {table: list(counts) for table, counts in result.mismatches.items()},
        }
        error = result.error or (
            "" if result.passed else f"Las filas no coinciden con el manifiesto en {len(result.mismatches)} tabla(s)."
        )
        if not error:
            progress(rows_done=progress.values.get("rows_total"), bytes_done=progress.values.get("bytes_total"))
        return {"result": summary, "error": error}

    return job_run(schema_name=schema_name, job_id=job_id, work=work)


def recovery_job_run(*, schema_name: str, file_name: str, job_id: int | None) -> BackupJob | None:
    from apps.backups.restore.recovery import clinic_recover_from_storage

    def work(progress) -> dict:
        restore = clinic_recover_from_storage(schema_name=schema_name, file_name=file_name or None, progress=progress)
        return {"restore": restore}

    if job_id is not None:
        return job_run(schema_name=schema_name, job_id=job_id, work=work)
    # The clinic's schema was lost: recover first, then record the job in the recovered schema.
    started = timezone.now()
    restore = clinic_recover_from_storage(schema_name=schema_name, file_name=file_name or None)
    with schema_context(schema_name):
        return BackupJob.objects.create(
            kind=Kind.RECOVERY,
            status=Status.SUCCEEDED,
            params={"file_name": file_name},
            phase="done",
            attempts=1,
            created_at=started,
            started_at=started,
            finished_at=timezone.now(),
            restore=restore,
        )


# Automatic backups through the queue ----------------------------------------------


@dataclass(frozen=True)
class EnqueuedSlot:
    clinic_name: str
    schema_name: str
    slot: str
    job_id: int


def scheduled_backups_enqueue(*, now: datetime | None = None) -> list[EnqueuedSlot]:
    """The cron's (or beat's) run with a broker: claim each due clinic's slot for
    the queue and send one task per clinic; workers anywhere make the backups.

    The claim's holder is ``queued:…`` with a long lease
    (``BACKUP_JOB_QUEUED_LEASE_SECONDS``) so that later runs do not enqueue it
    again while it waits; the worker that takes the message takes the claim over
    (``slot_take_over``), and only one can. A slot whose message was lost is
    claimed and enqueued again after that lease."""
    from apps.backups.jobs import tasks
    from apps.backups.monitoring.status import health_alert_check
    from apps.backups.scheduling.claims import QUEUED_PREFIX, slot_claim, worker_name
    from apps.backups.scheduling.selectors import backups_due

    current = timezone.now()
    if now is not None and now > current:
        raise ScheduleInFutureError(now)  # as the inline run: a slot is never used up early
    now = now or current
    connection.set_schema_to_public()
    due = backups_due(now=now)
    enqueued = []
    # Every run, as the inline one: operators hear of a degraded health without polling.
    health_alert_check(now=now)
    if not due:
        return enqueued
    holder = f"{QUEUED_PREFIX}{worker_name()}"
    with broker_connection() as conn:
        for item in due:
            connection.set_schema_to_public()
            claim_id = slot_claim(
                clinic_id=item.clinic_id,
                slot=item.slot,
                now=now,
                worker=holder,
                lease=settings.BACKUP_JOB_QUEUED_LEASE_SECONDS,
            )
            if claim_id is None:
                continue  # another run has it (queued or running)
            with schema_context(item.schema_name):
                job = BackupJob.objects.filter(
                    kind=Kind.BACKUP, schedule_slot=item.slot, status__in=[Status.QUEUED, Status.RUNNING]
                ).first() or BackupJob.objects.create(
                    kind=Kind.BACKUP, schedule_slot=item.slot, params={"backup_type": "automatic"}
                )
            args = [item.clinic_id, item.schema_name, item.slot, item.schedule, claim_id, job.pk, now.isoformat()]
            _enqueue(schema_name=item.schema_name, job=job, task=tasks.scheduled_backup_task, args=args, conn=conn)
            enqueued.append(EnqueuedSlot(item.name, item.schema_name, item.slot, job.pk))
    return enqueued


def scheduled_backup_job_run(
    *, clinic_id: int, schema_name: str, slot: str, schedule: str, claim_id: int, job_id: int, now: datetime
) -> BackupJob | None:
    """A queued automatic backup, on a worker: take the claim over, back up,
    record the outcome on the clinic (back-off on failure) and on the job."""
    from apps.backups.scheduling.claims import slot_take_over, worker_name
    from apps.backups.scheduling.run import claimed_backup_perform
    from apps.backups.scheduling.selectors import DueBackup

    connection.set_schema_to_public()
    worker = worker_name()
    if not slot_take_over(claim_id=claim_id, worker=worker):
        logger.info("Turno %s de %s: ya hecho o en otro worker; mensaje repetido ignorado.", slot, schema_name)
        return None
    clinic_name = Clinic.objects.filter(pk=clinic_id).values_list("name", flat=True).first() or schema_name
    due = DueBackup(clinic_id, schema_name, clinic_name, schedule, slot, now)

    def work(progress: JobProgress) -> dict:
        outcome = claimed_backup_perform(due=due, now=now, claim_id=claim_id, worker=worker, progress=progress)
        if outcome.status != "succeeded":
            return {"error": outcome.error or "No se hizo el backup."}
        return {"backup": outcome.record}

    # The claim decides who backs up: a worker that took it over from a dead one runs again.
    return job_run(schema_name=schema_name, job_id=job_id, work=work, rerun_interrupted=True)
