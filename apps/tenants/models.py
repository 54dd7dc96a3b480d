"""Clinics (tenants) and their domains. Both live in the public schema."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


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

    name = models.CharField(max_length=200)
    created_on = models.DateTimeField(auto_now_add=True)
    time_zone = models.CharField(
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text="Zona horaria de la clínica: define qué es 'hoy' y 'domingo' para sus backups.",
    )
    backup_schedule = models.CharField(
        max_length=10,
        choices=BackupSchedule.choices,
        default=BackupSchedule.DISABLED,
        help_text="Frecuencia de los backups automáticos.",
    )
    last_backup_at = models.DateTimeField(
        null=True, blank=True, help_text="Fecha y hora del último backup automático exitoso."
    )
    next_scheduled_backup = models.DateTimeField(
        null=True, blank=True, help_text="Fecha y hora exacta programada para el próximo backup."
    )

    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        verbose_name = "clínica"
        verbose_name_plural = "clínicas"
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return self.name


class Domain(DomainMixin):
    class Meta:
        verbose_name = "dominio"
        verbose_name_plural = "dominios"
