"""State changes of clinics (public schema)."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.postgresql_backend.base import _check_schema_name
from django_tenants.utils import quote_schema_name, schema_exists

from apps.tenants.models import Clinic, Domain


class ScheduleError(ValueError):
    """The requested backup schedule is not valid; the message is user-facing."""


def clinic_backup_config_update(
    *,
    clinic: Clinic,
    backup_schedule: str,
    next_scheduled_backup: datetime | None,
    explicit_date: bool = False,
) -> Clinic:
    """Set a clinic's automatic backup schedule.

    ``scheduled`` needs a future ``next_scheduled_backup``; the other schedules
    clear it so a stale one-off date cannot fire later. ``explicit_date``: the
    caller asked for that date, so it is refused (not silently dropped) with
    another schedule.
    """
    if backup_schedule not in Clinic.BackupSchedule.values:
        raise ScheduleError(f"Frecuencia desconocida: {backup_schedule}")
    if explicit_date and next_scheduled_backup is not None and backup_schedule != Clinic.BackupSchedule.SCHEDULED:
        raise ScheduleError("'next_scheduled_backup' solo se usa con la frecuencia 'scheduled'.")
    if backup_schedule == Clinic.BackupSchedule.SCHEDULED:
        if next_scheduled_backup is None:
            raise ScheduleError("Un backup programado necesita 'next_scheduled_backup'.")
        if next_scheduled_backup <= timezone.now():
            raise ScheduleError("'next_scheduled_backup' debe ser una fecha futura.")
    else:
        next_scheduled_backup = None
    clinic.backup_schedule = backup_schedule
    clinic.next_scheduled_backup = next_scheduled_backup
    clinic.save(update_fields=["backup_schedule", "next_scheduled_backup"])
    return clinic


def clinic_create(*, schema_name: str, name: str, domain: str, time_zone: str | None = None) -> Clinic:
    """Create a clinic, its schema (with all tenant migrations) and its primary domain."""
    clinic = Clinic(schema_name=schema_name, name=name)
    if time_zone:
        clinic.time_zone = time_zone
    clinic.full_clean(exclude=["created_on"])
    clinic.save(verbosity=0)
    Domain.objects.create(domain=domain, tenant=clinic, is_primary=True)
    return clinic


def clinic_template_dump(*, template: Clinic) -> str:
    """The template clinic's schema as SQL (tables, sequences, rows), for ``clinic_clone``."""
    from apps.backups.engine.pg_clients import find_client, libpq_environment, server_major

    client = find_client("pg_dump", min_major=server_major(connection))
    result = subprocess.run(
        [client.path, "--schema", template.schema_name, "--inserts", "--no-owner", "--no-privileges"],
        env=libpq_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump de la plantilla falló: {result.stderr.strip()[-500:]}")
    # psql meta-commands (\restrict of recent pg_dump releases) cannot run through a
    # cursor; transaction_timeout (pg_dump 17+) is unknown to older servers.
    skipped = ("\\", "SET transaction_timeout")
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith(skipped))


def clinic_clone(*, template: Clinic, template_sql: str, schema_name: str, name: str, domain: str) -> Clinic:
    """Create a clinic as a copy of an (empty) template clinic's schema, much
    faster than migrating a new schema: onboarding in bulk, benchmarks, tests.

    The template's schema is renamed to the new clinic's (tables, sequences,
    defaults and foreign keys follow, as they point at objects, not names), then
    the template is recreated from ``template_sql`` (``clinic_template_dump``).
    One transaction: on failure the template is exactly as before.
    """
    _check_schema_name(schema_name)
    if schema_exists(schema_name):
        raise ValidationError(f"El esquema {schema_name} ya existe.")
    connection.set_schema_to_public()
    clinic = Clinic(schema_name=schema_name, name=name, time_zone=template.time_zone)
    clinic.auto_create_schema = False  # the schema comes from the template
    clinic.full_clean(exclude=["created_on"])
    with transaction.atomic(), connection.cursor() as cursor:
        old, new = quote_schema_name(template.schema_name), quote_schema_name(schema_name)
        cursor.execute(f"ALTER SCHEMA {old} RENAME TO {new}")
        cursor.execute(template_sql)
        cursor.execute("SELECT pg_catalog.set_config('search_path', 'public', false)")
        clinic.save()
        Domain.objects.create(domain=domain, tenant=clinic, is_primary=True)
    return clinic


def clinic_time_zone_update(*, clinic: Clinic, time_zone: str) -> Clinic:
    """Set the clinic's time zone (the platform's decision, not the clinic admin's):
    from then on its "today" and "Sunday" for automatic backups are in this zone."""
    clinic.time_zone = time_zone
    clinic.full_clean(exclude=["created_on"], validate_unique=False)
    clinic.save(update_fields=["time_zone"])
    return clinic


_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def platform_domain_add(*, domain: str) -> Domain:
    """Make ``domain`` one of the platform's (the public tenant's, created if missing):
    ``/admin/`` and ``/health/backups/`` answer only there. Idempotent; a clinic's
    domain or something that is not a host name is refused (``ValidationError``)."""
    domain = domain.strip().lower()
    if not _HOST_NAME.match(domain):
        raise ValidationError(
            f"«{domain}» no es un nombre de dominio (sin https:// ni puerto; p. ej. admin.psicoadmin.com)."
        )
    public, _ = Clinic.objects.get_or_create(schema_name=settings.PUBLIC_SCHEMA_NAME, defaults={"name": "PsicoAdmin"})
    existing = Domain.objects.select_related("tenant").filter(domain=domain).first()
    if existing is not None:
        if existing.tenant_id != public.pk:
            raise ValidationError(f"«{domain}» es el dominio de la clínica {existing.tenant.name}.")
        return existing
    is_primary = not Domain.objects.filter(tenant=public, is_primary=True).exists()
    return Domain.objects.create(domain=domain, tenant=public, is_primary=is_primary)


def platform_domains() -> list[str]:
    return list(
        Domain.objects.filter(tenant__schema_name=settings.PUBLIC_SCHEMA_NAME)
        .order_by("-is_primary", "domain")
        .values_list("domain", flat=True)
    )
