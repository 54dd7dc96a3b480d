"""The pre-data and post-data DDL of one clinic-schema structure, with the schema's
name replaced by a placeholder, as pg_dump wrote it (see apps.backups.engine.ddl)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SchemaDdl(models.Model):
    fingerprint = models.CharField(
        "huella de la estructura", max_length=64, help_text="SHA-256 de la estructura del esquema (sin su nombre)."
    )
    pg_dump_version = models.CharField("versión de pg_dump", max_length=20, help_text="pg_dump que escribió el DDL.")
    placeholder = models.CharField(
        "marcador del esquema", max_length=64, help_text="Token que sustituye al nombre del esquema."
    )
    pre_data = models.TextField("DDL previo a los datos")
    post_data = models.TextField("DDL posterior a los datos")
    source_schema = models.CharField("esquema de origen", max_length=63, help_text="Clínica de la que se obtuvo.")
    fill_seconds = models.FloatField(
        "segundos de obtención", default=0, help_text="Lo que costó obtenerlo con pg_dump."
    )
    created_at = models.DateTimeField("creado", auto_now_add=True)
    last_used_at = models.DateTimeField(
        "último uso",
        default=timezone.now,
        help_text="Último backup que lo usó (al día): cleanup_old_backups borra los que no se usan.",
    )

    class Meta:
        verbose_name = "DDL de estructura"
        verbose_name_plural = "DDL de estructuras"
        constraints = [
            models.UniqueConstraint(fields=["fingerprint", "pg_dump_version"], name="schema_ddl_fingerprint_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint[:12]} (pg_dump {self.pg_dump_version})"
