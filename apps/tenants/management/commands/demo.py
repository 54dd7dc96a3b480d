from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test.utils import override_settings
from django_tenants.utils import tenant_context

from apps.backups.engine import crypto
from apps.backups.management.spanish import SpanishCommand
from apps.backups.models import BackupRecord
from apps.tenants.demo import demo_clinics_ensure
from apps.tenants.selectors import clinic_row_counts


class Command(SpanishCommand):
    help = (
        "Prepara la plataforma de demostración: migra, crea 'bienestar' y 'mindcare' con datos, "
        "hace un backup de cada una y muestra su historial."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="Tamaño aproximado de cada clínica en MB de volcado SQL (1 por defecto).",
        )
        parser.add_argument("--no-backup", action="store_true", help="Solo datos, sin backups.")

    def handle(self, *args, scale: float, no_backup: bool, **options):
        if scale <= 0:
            raise CommandError("--scale debe ser mayor que 0.")
        call_command("migrate_schemas", interactive=False, verbosity=0)
        clinics = demo_clinics_ensure(scale=scale, password=settings.DEMO_PASSWORD)
        for clinic in clinics:
            domain = clinic.get_primary_domain().domain
            self.stdout.write(self.style.SUCCESS(f"🏥 {clinic.name} ({clinic.schema_name}, http://{domain}:8000)"))
            for label, count in clinic_row_counts(clinic=clinic).items():
                self.stdout.write(f"   {label:<40} {count:>8}")
        if no_backup:
            return
        with override_settings(**self._demo_key_settings()):
            call_command("backup_clinics", *[clinic.schema_name for clinic in clinics], stdout=self.stdout)
        for clinic in clinics:
            self.stdout.write(f"🗂  Historial de {clinic.name}:")
            with tenant_context(clinic):
                for record in BackupRecord.objects.all():
                    self.stdout.write(
                        f"   #{record.pk:<4} {record.file_name:<50} {record.status:<9} {record.file_size:>10} B"
                    )

    def _demo_key_settings(self) -> dict:
        """Without configured keys, encrypt with a key pair kept in the demo's data folder
        (never inside the backup storage)."""
        if settings.BACKUP_AGE_IDENTITY_FILE or settings.BACKUP_AGE_RECIPIENTS:
            return {}
        identity_file = Path(settings.DATA_DIR) / "age" / "identity.txt"
        if not identity_file.exists():
            public_key = crypto.identity_file_create(identity_file)
            self.stdout.write(f"🔑 Clave age de la demo creada en {identity_file} (pública: {public_key})")
        return {"BACKUP_AGE_IDENTITY_FILE": str(identity_file)}
