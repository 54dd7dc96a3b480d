from django.core.management.base import CommandError

from apps.backups.errors import BackupError
from apps.backups.interrupts import stop_on_signals, stop_requested, stop_signal_name
from apps.backups.management.commands._progress import command_progress
from apps.backups.management.spanish import SpanishCommand
from apps.backups.services import backup_create
from apps.backups.storage import get_backup_storage
from apps.tenants.selectors import clinics_for_backup


class Command(SpanishCommand):
    help = "Hace ahora un backup de una o varias clínicas (o de todas con --all)."
    # Run often and by machines: skip the URL/admin checks (~0.4 s per start).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("schemas", nargs="*", help="Esquemas de las clínicas (p. ej. bienestar).")
        parser.add_argument("--all", action="store_true", help="Todas las clínicas (excepto public).")

    def handle(self, *args, schemas: list[str], all: bool, **options):
        if schemas and all:
            raise CommandError("Indica esquemas de clínicas o --all, no ambos.")
        if not schemas and not all:
            raise CommandError("Indica qué clínicas respaldar: sus esquemas (p. ej. bienestar) o --all.")
        clinics = clinics_for_backup()
        if schemas:
            clinics = clinics.filter(schema_name__in=schemas)
            missing = set(schemas) - {clinic.schema_name for clinic in clinics}
            if missing:
                raise CommandError(f"Clínicas desconocidas: {', '.join(sorted(missing))}")
        label = get_backup_storage().label
        failures = 0
        with stop_on_signals():
            for clinic in clinics:
                if stop_requested():
                    break
                failures += not self._backup(clinic, label)
            interrupted_by = stop_signal_name() if stop_requested() else ""
        if interrupted_by:
            raise CommandError(
                f"Interrumpido ({interrupted_by}): el backup en curso quedó como fallido y no se hicieron más."
            )
        if failures:
            raise CommandError(f"{failures} backup(s) fallaron.")

    def _backup(self, clinic, label: str) -> bool:
        self.stdout.write(f"📦 Iniciando backup para: {clinic.name}...")
        try:
            with command_progress(self, clinic.schema_name) as progress:
                record = backup_create(clinic=clinic, backup_type="manual", progress=progress)
        except BackupError as error:
            self.stderr.write(f"   -> Error: {error}")
            return False
        self.stdout.write(
            f"   -> Subido exitosamente a {label}: {record.file_name} "
            f"({record.file_size / 1_048_576:.1f} MB, {record.duration.total_seconds():.1f} s)"
        )
        return True
