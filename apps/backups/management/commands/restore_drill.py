import logging

from django.core.management.base import CommandError

from apps.backups.errors import BackupError
from apps.backups.management.commands._progress import command_progress
from apps.backups.management.spanish import SpanishCommand
from apps.backups.restore.recovery import DrillResult, restore_drill
from apps.tenants.selectors import clinics_for_backup

logger = logging.getLogger(__name__)


class Command(SpanishCommand):
    help = (
        "Simulacro de restauración: restaura el backup más reciente de cada clínica en un esquema temporal, "
        "compara el número de filas con su manifiesto y lo borra, sin tocar la clínica."
    )

    def add_arguments(self, parser):
        parser.add_argument("schemas", nargs="*", help="Esquemas a comprobar (por defecto, todas las clínicas).")
        parser.add_argument(
            "--async",
            action="store_true",
            dest="in_background",
            help="Poner un simulacro por clínica en la cola de tareas (los hacen los workers de Celery).",
        )

    def handle(self, *args, schemas: list[str], in_background: bool = False, **options):
        clinics = clinics_for_backup()
        if schemas:
            clinics = clinics.filter(schema_name__in=schemas)
            unknown = sorted(set(schemas) - {clinic.schema_name for clinic in clinics})
            if unknown:
                raise CommandError(f"Clínicas desconocidas: {', '.join(unknown)}. No se hizo ningún simulacro.")
        if in_background:
            from apps.backups.jobs.services import drill_job_start

            refused = 0
            for clinic in clinics:
                try:
                    job = drill_job_start(clinic=clinic)
                except BackupError as error:  # busy, or the broker is down: said per clinic
                    refused += 1
                    self.stderr.write(f"❌ {clinic.schema_name}: {error}")
                    continue
                self.stdout.write(f"📨 {clinic.schema_name}: simulacro en cola (tarea {job.pk}, estado {job.status}).")
            if refused:
                raise CommandError(f"{refused} simulacro(s) no se pusieron en cola.")
            return
        failed = 0
        for clinic in clinics:
            # Every clinic gets its line, whatever happened to the one before.
            try:
                with command_progress(self, clinic.schema_name) as progress:
                    result = restore_drill(clinic=clinic, progress=progress)
            except BackupError as error:  # busy, or the storage refused the key: one line, not a traceback
                result = DrillResult(schema_name=clinic.schema_name, error=str(error))
            except Exception as error:
                failed += 1
                logger.exception("Simulacro de %s fallido", clinic.schema_name)
                kind = type(error).__name__
                self.stderr.write(f"❌ {clinic.schema_name}: error inesperado ({kind}); ver el registro.")
                continue
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
