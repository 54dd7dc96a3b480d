"""A job's progress reaches its row at most about once a second, and at each phase."""

from __future__ import annotations

from django.core.management import call_command
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.jobs.progress import JobProgress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def job_row(job_id: int) -> BackupJob:
    with schema_context("alfa"):
        return BackupJob.objects.get(pk=job_id)


def test_progress_is_written_at_most_once_per_interval_and_at_each_phase(committed):
    with schema_context("alfa"):
        job = BackupJob.objects.create(kind="restore", status="running")
    clock = FakeClock()
    progress = JobProgress(schema_name="alfa", job_id=job.pk, interval=1.0, clock=clock)

    progress("loading", bytes_done=0, bytes_total=1000, rows_total=50)
    assert progress.writes == 1
    for done in range(1, 200):  # 199 chunks within 0.99 s: no write
        clock.now += 0.005
        progress(bytes_done=done)
    assert progress.writes == 1
    assert (job_row(job.pk).phase, job_row(job.pk).bytes_done) == ("loading", 0)
    clock.now += 0.1  # a second since the last write
    progress(bytes_done=500)
    assert progress.writes == 2
    row = job_row(job.pk)
    assert (row.bytes_done, row.bytes_total, row.rows_total, row.progress_at is not None) == (500, 1000, 50, True)
    progress("swapping")  # a new phase is written at once, with the latest figures
    assert progress.writes == 3 and job_row(job.pk).phase == "swapping"


def test_commands_print_plain_progress_lines_when_not_on_a_terminal(committed, capsys):
    call_command("backup_clinics", "beta")
    out = capsys.readouterr().out
    assert "… beta: volcando" in out and "… beta: verificando" in out
    assert "\x1b[" not in out  # no terminal escapes in logs
