"""A long operation (backup, restore, drill, disaster recovery) run by a Celery
worker, in the clinic's own schema like the rest of its backup history."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class BackupJob(models.Model):
    class Kind(models.TextChoices):
        BACKUP = "backup", "Backup"
        RESTORE = "restore", "Restauración"
        DRILL = "drill", "Simulacro de restauración"
        RECOVERY = "recovery", "Recuperación desde el almacenamiento"

    class Status(models.TextChoices):
        QUEUED = "queued", "En cola"
        RUNNING = "running", "En curso"
        SUCCEEDED = "succeeded", "Completado"
        FAILED = "failed", "Fallido"

    kind = models.CharField("tipo", max_length=10, choices=Kind.choices)
    status = models.CharField("estado", max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    params = models.JSONField(
        "parámetros", default=dict, blank=True, help_text="Lo que se pidió (backup_id, turno...)."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backup_jobs",
        verbose_name="pedida por",
    )
    schedule_slot = models.CharField("turno programado", max_length=40, blank=True, db_index=True)
    task_id = models.CharField("id del mensaje (Celery)", max_length=64, blank=True)
    worker = models.CharField("proceso que la ejecuta", max_length=120, blank=True)
    attempts = models.PositiveSmallIntegerField("intentos", default=0)

    phase = models.CharField("fase", max_length=20, blank=True)
    bytes_done = models.BigIntegerField("bytes hechos", default=0)
    bytes_total = models.BigIntegerField("bytes en total", null=True, blank=True)
    rows_done = models.BigIntegerField("filas hechas", default=0)
    rows_total = models.BigIntegerField("filas en total", null=True, blank=True)
    progress_at = models.DateTimeField("último progreso", null=True, blank=True)

    created_at = models.DateTimeField("creada", default=timezone.now, db_index=True)
    started_at = models.DateTimeField("iniciada", null=True, blank=True)
    finished_at = models.DateTimeField("terminada", null=True, blank=True)
    error = models.TextField("mensaje de error", blank=True)
    backup = models.ForeignKey(
        "backups.BackupRecord",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        verbose_name="backup resultante",
    )
    restore = models.ForeignKey(
        "backups.BackupRestore",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        verbose_name="restauración resultante",
    )
    result = models.JSONField("resultado", default=dict, blank=True, help_text="Resultado del simulacro, etc.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "tarea de backup"
        verbose_name_plural = "tareas de backup"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)
