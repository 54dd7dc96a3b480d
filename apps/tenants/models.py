"""Clinics (tenants) and their domains. Both live in the public schema."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.postgresql_backend.base import _check_schema_name


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Zona horaria desconocida: {value}")


def default_time_zone() -> str:
    return settings.TIME_ZONE


class Clinic(TenantMixin):
    class BackupSchedule(models.TextChoices):
        DISABLED = "disabled", "Desactivado"
        DAILY = "daily", "Diario"
        WEEKLY = "weekly", "Semanal"
        SCHEDULED = "scheduled", "Programado por Fecha"

    # Redeclared from TenantMixin (same column) only to give it a Spanish label.
    schema_name = models.CharField(
        "esquema", max_length=63, unique=True, db_index=True, validators=[_check_schema_name]
    )
    name = models.CharField("nombre", max_length=200)
    created_on = models.DateTimeField("creada", auto_now_add=True)
    time_zone = models.CharField(
        "zona horaria",
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text="Zona horaria de la clínica: define qué es 'hoy' y 'domingo' para sus backups.",
    )
    backup_schedule = models.CharField(
        "frecuencia de backups",
        max_length=10,
        choices=BackupSchedule.choices,
        default=BackupSchedule.DISABLED,
        help_text="Frecuencia de los backups automáticos.",
    )
    last_backup_at = models.DateTimeField(
        "último backup automático",
        null=True,
        blank=True,
        help_text="Fecha y hora del último backup automático exitoso.",
    )
    next_scheduled_backup = models.DateTimeField(
        "próximo backup programado",
        null=True,
        blank=True,
        help_text="Fecha y hora exacta programada para el próximo backup.",
    )
    # Back-off of the automatic backups (apps.backups.scheduling.rules): a failing
    # clinic is retried later, not every minute.
    backup_failures = models.PositiveIntegerField(
        "fallos seguidos", default=0, help_text="Backups automáticos fallidos seguidos (0 tras un éxito)."
    )
    backup_retry_at = models.DateTimeField(
        "próximo reintento",
        null=True,
        blank=True,
        help_text="Tras un fallo: no reintentar el backup automático antes de esta hora.",
    )
    backup_last_error = models.TextField(
        "último error", blank=True, help_text="Error del último backup automático fallido."
    )
    backup_last_attempt_at = models.DateTimeField(
        "último intento", null=True, blank=True, help_text="Último intento de backup automático (con éxito o no)."
    )

    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        verbose_name = "clínica"
        verbose_name_plural = "clínicas"
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return self.name


class ScheduledBackupClaim(models.Model):
    """One automatic backup slot of one clinic, claimed by one worker.

    The unique (clinic, slot) pair is what makes overlapping cron runs and
    parallel workers back a clinic up once per slot; ``lease_until`` (renewed
    while the backup runs) lets another worker take over from one that died.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "En curso"
        SUCCEEDED = "succeeded", "Completado"
        FAILED = "failed", "Fallido"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="backup_claims", verbose_name="clínica")
    slot = models.CharField("periodo", max_length=40, help_text="Periodo cubierto, p. ej. 'daily:2025-11-25'.")
    status = models.CharField("estado", max_length=10, choices=Status.choices, default=Status.RUNNING)
    worker = models.CharField("proceso", max_length=120, help_text="host:pid:hilo del proceso que lo tomó.")
    claimed_at = models.DateTimeField("tomado")
    lease_until = models.DateTimeField("reservado hasta")
    finished_at = models.DateTimeField("terminado", null=True, blank=True)
    attempts = models.PositiveIntegerField("intentos", default=1)
    error = models.TextField("mensaje de error", blank=True)

    class Meta:
        verbose_name = "turno de backup automático"
        verbose_name_plural = "turnos de backups automáticos"
        constraints = [models.UniqueConstraint(fields=["clinic", "slot"], name="unique_backup_claim_per_slot")]

    def __str__(self) -> str:
        return f"{self.clinic_id} {self.slot} ({self.status})"


class Domain(DomainMixin):
    # Redeclared from DomainMixin (same columns) only to give them Spanish labels.
    domain = models.CharField("dominio", max_length=253, unique=True, db_index=True)
    tenant = models.ForeignKey(
        settings.TENANT_MODEL, db_index=True, related_name="domains", on_delete=models.CASCADE, verbose_name="clínica"
    )
    is_primary = models.BooleanField("principal", default=True, db_index=True)

    class Meta:
        verbose_name = "dominio"
        verbose_name_plural = "dominios"


class BackupAlertState(models.Model):
    """What the platform's operators were last told about one subject, so an alert
    goes out on a change (first failure, recovery, health turning degraded) and a
    lasting failure is repeated only every ``BACKUP_ALERT_REPEAT_HOURS``, never every minute.

    ``key``: ``backup:<schema>`` for a clinic's automatic backups, ``health`` for ``/health/backups/``.
    """

    key = models.CharField("asunto", max_length=80, unique=True)
    active = models.BooleanField("en fallo", default=False)
    alerted_at = models.DateTimeField("último aviso", null=True, blank=True)

    class Meta:
        verbose_name = "estado de aviso de backups"
        verbose_name_plural = "estados de avisos de backups"

    def __str__(self) -> str:
        return f"{self.key}: {'en fallo' if self.active else 'bien'}"


class ClinicBackupState(Clinic):
    """The platform admin's fleet view of the clinics' backups (``apps/backups/admin.py``)."""

    class Meta:
        proxy = True
        verbose_name = "estado de backups"
        verbose_name_plural = "estado de backups de las clínicas"
