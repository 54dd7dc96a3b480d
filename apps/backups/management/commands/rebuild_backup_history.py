from django.core.management.base import CommandError

from apps.backups.errors import BackupError
from apps.backups.management.spanish import SpanishCommand
from apps.backups.restore.recovery import backup_history_resync
from apps.tenants.models import Clinic


class Command(SpanishCommand):
    help = "Reconstruye el historial de backups de una clínica a partir de los manifiestos del almacenamiento."

    def add_arguments(self, parser):
        parser.add_argument("schema", help="Esquema de la clínica.")

    def handle(self, *args, schema: str, **options):
        clinic = Clinic.objects.exclude(schema_name="public").filter(schema_name=schema).first()
        if clinic is None:
            raise CommandError(
                f"Clínica desconocida: {schema} (para una clínica perdida usa restore_clinic_from_storage)."
            )
        try:
            changed = backup_history_resync(clinic=clinic)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"✅ Historial de {schema}: {changed} registro(s) creados o corregidos."))
