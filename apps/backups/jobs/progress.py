"""A job's progress, written to its row at most about once a second.

The services call the progress hook for every 64 KiB chunk; ``JobProgress``
keeps the latest values in memory and writes them when the interval
(``BACKUP_JOB_PROGRESS_INTERVAL_MS``, 1000) has passed since the last write,
or when the phase changes (a handful of times per job). A failed write is
logged and never stops the backup or restore it describes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob

logger = logging.getLogger(__name__)
FIELDS = ("bytes_done", "bytes_total", "rows_done", "rows_total")
# The phases the services report, in the operator's and the admin's words.
PHASE_LABELS = {
    "": "en espera",
    "dumping": "volcando",
    "verifying": "verificando",
    "loading": "cargando",
    "migrating": "migrando",
    "swapping": "activando",
    "comparing": "comparando",
    "history": "historial",
    "done": "terminado",
}


class JobProgress:
    """The progress callable (``apps.backups.engine.progress``) of one job."""

    def __init__(
        self,
        *,
        schema_name: str,
        job_id: int,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        echo: Callable[..., None] | None = None,
    ):
        self.schema_name, self.job_id = schema_name, job_id
        self.interval = settings.BACKUP_JOB_PROGRESS_INTERVAL if interval is None else interval
        self._clock = clock
        self._echo = echo
        self._last_write: float | None = None
        self.values: dict = {"phase": ""}
        self.writes = 0

    def __call__(self, phase: str | None = None, **values) -> None:
        phase_changed = phase is not None and phase != self.values["phase"]
        if phase is not None:
            self.values["phase"] = phase
        for name in FIELDS:
            if values.get(name) is not None:
                self.values[name] = values[name]
        if self._echo is not None:
            self._echo(phase, **values)
        now = self._clock()
        if phase_changed or self._last_write is None or now - self._last_write >= self.interval:
            self._last_write = now
            self.flush()

    def flush(self) -> None:
        self.writes += 1
        try:
            with schema_context(self.schema_name):
                BackupJob.objects.filter(pk=self.job_id).update(**self.values, progress_at=timezone.now())
        except DatabaseError as error:
            logger.warning("No se pudo guardar el progreso de la tarea %s: %s", self.job_id, error)
