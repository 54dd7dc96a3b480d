"""Backup history. These tables live in each clinic's own schema, never in public."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class BackupRecord(models.Model):
    BACKUP_TYPES = (
        ("manual", "Manual"),
        ("automatic", "Automático"),
    )

    class Status(models.TextChoices):
        RUNNING = "running", "En curso"
        SUCCEEDED = "succeeded", "Completado"
        FAILED = "failed", "Fallido"

    class Format(models.TextChoices):
        SQL = "sql", "SQL (pg_dump)"
        JSON = "json", "JSON (dumpdata)"

    file_name = models.CharField("nombre del archivo", max_length=255)
    file_path = models.TextField("ruta del archivo", blank=True, help_text="Ruta del objeto almacenado en el bucket.")
    file_size = models.BigIntegerField("tamaño (bytes)", default=0, help_text="Bytes del .sql/.json que se descarga.")
    backup_type = models.CharField("tipo de backup", max_length=10, choices=BACKUP_TYPES)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backups",
        verbose_name="creado por",
    )
    created_at = models.DateTimeField("creado", default=timezone.now, db_index=True)

    status = models.CharField("estado", max_length=10, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField("mensaje de error", blank=True)
    format = models.CharField("formato", max_length=4, choices=Format.choices, blank=True)
    sql_style = models.CharField("estilo SQL", max_length=8, blank=True)
    fallback_reason = models.TextField(
        "motivo del formato JSON", blank=True, help_text="Por qué se usó JSON en lugar de pg_dump."
    )
    checksum_sha256 = models.CharField(
        "SHA-256 almacenado", max_length=64, blank=True, help_text="SHA-256 del objeto almacenado."
    )
    plain_sha256 = models.CharField(
        "SHA-256 sin comprimir", max_length=64, blank=True, help_text="SHA-256 del .sql/.json."
    )
    stored_size = models.BigIntegerField("tamaño almacenado (bytes)", default=0)
    compression = models.CharField("compresión", max_length=10, blank=True)
    encryption = models.CharField("cifrado", max_length=10, blank=True)
    manifest_path = models.TextField("ruta del manifiesto", blank=True)
    pg_dump_version = models.CharField("versión de pg_dump", max_length=20, blank=True)
    server_version = models.CharField("versión del servidor", max_length=20, blank=True)
    duration = models.DurationField("duración", null=True, blank=True)
    finished_at = models.DateTimeField("terminado", null=True, blank=True)
    schedule_slot = models.CharField(
        "periodo programado",
        max_length=40,
        blank=True,
        db_index=True,
        help_text="Para backups automáticos: el periodo (p. ej. 'daily:2025-11-25') que cubre.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "backup"
        verbose_name_plural = "backups"
        constraints = [
            # Two backups started in the same second must not share a name: the
            # second would overwrite the first's object. Unnamed (running) rows are exempt.
            models.UniqueConstraint(
                fields=["file_name"], condition=~models.Q(file_name=""), name="backup_file_name_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.file_name

    @property
    def is_stale(self) -> bool:
        """A ``running`` record older than any real backup takes: its worker died."""
        limit = timedelta(minutes=settings.BACKUP_STALE_AFTER_MINUTES)
        return self.status == self.Status.RUNNING and self.created_at < timezone.now() - limit

    @property
    def is_encrypted(self) -> bool:
        return bool(self.encryption)


class BackupDownload(models.Model):
    """Who downloaded which backup, when and from where (clinical data leaves the platform)."""

    backup = models.ForeignKey(
        BackupRecord, on_delete=models.CASCADE, related_name="downloads", verbose_name="backup descargado"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backup_downloads",
        verbose_name="usuario",
    )
    downloaded_at = models.DateTimeField("descargado", default=timezone.now)
    ip_address = models.GenericIPAddressField("dirección IP", null=True, blank=True)
    user_agent = models.CharField("navegador (user agent)", max_length=255, blank=True)

    class Meta:
        ordering = ["-downloaded_at"]
        verbose_name = "descarga de backup"
        verbose_name_plural = "descargas de backups"

    def __str__(self) -> str:
        return f"{self.backup} → {self.user} ({self.downloaded_at:%Y-%m-%d %H:%M})"


class BackupRestore(models.Model):
    """One restore of this clinic: who asked, from what, and what became of it."""

    class Source(models.TextChoices):
        BACKUP = "backup", "Backup de la clínica"
        UPLOAD = "upload", "Archivo subido"
        DISASTER_RECOVERY = "storage", "Almacenamiento (recuperación ante desastres)"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Completado"
        FAILED = "failed", "Fallido"

    source = models.CharField("origen", max_length=10, choices=Source.choices)
    backup = models.ForeignKey(
        BackupRecord,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restores",
        verbose_name="backup de origen",
    )
    backup_file_name = models.CharField("archivo del backup", max_length=255, blank=True)
    uploaded_file_name = models.CharField("archivo subido", max_length=255, blank=True)
    uploaded_sha256 = models.CharField("SHA-256 del archivo subido", max_length=64, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backup_restores",
        verbose_name="pedida por",
    )
    started_at = models.DateTimeField("inicio", default=timezone.now)
    finished_at = models.DateTimeField("terminado", null=True, blank=True)
    status = models.CharField("estado", max_length=10, choices=Status.choices)
    error = models.TextField("mensaje de error", blank=True)
    previous_schema = models.CharField(
        "esquema anterior",
        max_length=63,
        blank=True,
        help_text="Esquema apartado con el estado anterior a la restauración.",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "restauración"
        verbose_name_plural = "restauraciones"

    def __str__(self) -> str:
        return f"Restauración {self.pk} ({self.status})"


from apps.backups.jobs.models import BackupJob  # noqa: E402, F401 - registered with this app's models
