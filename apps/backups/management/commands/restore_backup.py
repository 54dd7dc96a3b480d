from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from apps.backups.errors import BackupError
from apps.backups.management.commands._progress import command_progress
from apps.backups.management.spanish import SpanishCommand
from apps.backups.models import BackupRecord
from apps.backups.restore.swap import backup_restore
from apps.backups.services import backup_get_available
from apps.tenants.models import Clinic


class Command(SpanishCommand):
    help = "Restaura una clínica desde uno de sus backups (reemplaza sus datos; el estado anterior se conserva)."
    # Needed fast on a bad day: skip the URL/admin checks (~0.4 s per start).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("backup_id", type=int, help="ID del backup (ver /api/backups/history/).")
        parser.add_argument("--clinic", required=True, help="Esquema de la clínica (p. ej. bienestar).")

    def handle(self, *args, backup_id: int, clinic: str, **options):
        target = Clinic.objects.exclude(schema_name="public").filter(schema_name=clinic).first()
        if target is None:
            raise CommandError(f"Clínica desconocida: {clinic}")
        try:
            with schema_context(target.schema_name):
                record = backup_get_available(backup_id=backup_id)
            self.stdout.write(f"♻️  Restaurando {target.name} desde {record.file_name}...")
            with command_progress(self, target.schema_name) as progress:
                restore = backup_restore(clinic=target, record=record, progress=progress)
        except BackupRecord.DoesNotExist:
            raise CommandError(f"La clínica {clinic} no tiene un backup con ID {backup_id}.") from None
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(f"✅ Restaurada. Estado anterior conservado en el esquema {restore.previous_schema}.")
        )
