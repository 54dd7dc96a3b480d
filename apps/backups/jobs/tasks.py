"""The Celery tasks: thin shells that run one job service in the clinic's schema.

Each takes the clinic's schema name and the job's id (plain JSON arguments) and
returns a small summary for the result store; the job row is the record.
"""

from __future__ import annotations

from datetime import datetime

from apps.backups.jobs import services
from config.celery import app


def _summary(job) -> dict:
    if job is None:
        return {"status": "skipped"}
    return {"job_id": job.pk, "status": job.status, "error": job.error}


@app.task(name="backups.backup_job")
def backup_job_task(schema_name: str, job_id: int) -> dict:
    return _summary(services.backup_job_run(schema_name=schema_name, job_id=job_id))


@app.task(name="backups.restore_job")
def restore_job_task(schema_name: str, job_id: int) -> dict:
    return _summary(services.restore_job_run(schema_name=schema_name, job_id=job_id))


@app.task(name="backups.drill_job")
def drill_job_task(schema_name: str, job_id: int) -> dict:
    return _summary(services.drill_job_run(schema_name=schema_name, job_id=job_id))


@app.task(name="backups.recovery_job")
def recovery_job_task(schema_name: str, file_name: str, job_id: int | None) -> dict:
    return _summary(services.recovery_job_run(schema_name=schema_name, file_name=file_name, job_id=job_id))


@app.task(name="backups.scheduled_backup")
def scheduled_backup_task(
    clinic_id: int, schema_name: str, slot: str, schedule: str, claim_id: int, job_id: int, now: str
) -> dict:
    job = services.scheduled_backup_job_run(
        clinic_id=clinic_id,
        schema_name=schema_name,
        slot=slot,
        schedule=schedule,
        claim_id=claim_id,
        job_id=job_id,
        now=datetime.fromisoformat(now),
    )
    return _summary(job)


@app.task(name="backups.scheduled_backups_enqueue")
def scheduled_backups_enqueue_task() -> dict:
    """Celery beat's every-minute run (instead of the cron): enqueue the due clinics."""
    return {"enqueued": len(services.scheduled_backups_enqueue())}
