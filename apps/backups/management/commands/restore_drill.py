from django.core.management.base import CommandError

from apps.backups.errors import BackupError
from apps.backups.management.spanish import SpanishCommand
from apps.backups.restore.recovery import DrillResult, restore_drill
from apps.tenants.selectors import clinics_for_backup


class Command(SpanishCommand):
    help = (
        "Simulacro de restauración: restaura el backup más reciente de cada clínica en un esquema temporal, "
        "compara el número de filas con su manifiesto y lo borra, sin tocar la clínica."
    )

    def add_arguments(self, parser):
        parser.add_argument("schemas", nargs="*", help="Esquemas a comprobar (por defecto, todas las clínicas).")

    def handle(self, *args, schemas: list[str], **options):
        clinics = clinics_for_backup()
        if schemas:
            clinics = clinics.filter(schema_name__in=schemas)
            unknown = set(schemas) - {clinic.schema_name for clinic in clinics}
            if unknown:
                raise CommandError(f"Clínicas desconocidas: {', '.join(sorted(unknown))}")
        failed = 0
        for clinic in clinics:
            try:
                result = restore_drill(clinic=clinic)
            except BackupError as error:  # e.g. the storage refused the key: one line, not a traceback
                result = DrillResult(schema_name=clinic.schema_name, error=str(error))
            if result.passed:
                self.stdout.write(
                    f"✅ {clinic.schema_name}: {result.file_name} se restaura y cuadra con su manifiesto."
                )
                continue
            failed += 1
            detail = result.error or ", ".join(
                f"{table}: manifiesto {expected}, restaurado {actual}"
                for table, (expected, actual) in result.mismatches.items()
            )
            self.stderr.write(f"❌ {clinic.schema_name}: {result.file_name or '—'}: {detail}")
        if failed:
            raise CommandError(f"{failed} clínica(s) no superaron el simulacro.")
