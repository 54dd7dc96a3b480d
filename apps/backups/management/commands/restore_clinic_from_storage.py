from django.core.management.base import CommandError

from apps.backups.errors import BackupError
from apps.backups.management.commands._progress import command_progress
from apps.backups.management.spanish import SpanishCommand
from apps.backups.restore.recovery import clinic_recover_from_storage, stored_manifests
from apps.backups.storage import get_backup_storage


class Command(SpanishCommand):
    help = (
        "Recuperación ante desastres: restaura una clínica solo con lo que hay en el almacenamiento "
        "(recrea la clínica y sus dominios si faltan, y reconstruye su historial de backups)."
    )

    def add_arguments(self, parser):
        parser.add_argument("schema", help="Esquema de la clínica (carpeta en el bucket).")
        parser.add_argument("--list", action="store_true", help="Solo listar los backups almacenados.")
        parser.add_argument("--backup", help="Nombre del backup (.sql/.json) a restaurar; por defecto el más reciente.")
        parser.add_argument(
            "--async",
            action="store_true",
            dest="in_background",
            help="Ponerla en la cola de tareas: la hace un worker de Celery.",
        )

    def handle(self, *args, schema: str, list: bool, backup: str | None, in_background: bool = False, **options):
        try:
            if list:
                self._list(schema)
                return
            if in_background:
                from apps.backups.jobs.services import recovery_job_start

                task_id, job = recovery_job_start(schema_name=schema, file_name=backup)
                where = f"tarea {job.pk} de la clínica" if job else "la tarea se registrará en la clínica recuperada"
                self.stdout.write(f"📨 Recuperación de {schema} en cola ({where}; mensaje {task_id}).")
                return
            self.stdout.write(f"♻️  Recuperando {schema} desde {get_backup_storage().label}...")
            with command_progress(self, schema) as progress:
                restore = clinic_recover_from_storage(schema_name=schema, file_name=backup, progress=progress)
        except (BackupError, ValueError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"✅ {schema} restaurada desde {restore.backup_file_name}."))

    def _list(self, schema: str) -> None:
        manifests = stored_manifests(schema_name=schema)
        if not manifests:
            raise CommandError(f"No hay backups de {schema} en {get_backup_storage().label}.")
        for manifest in manifests:
            backup = manifest["backup"]
            self.stdout.write(
                f"{backup['created_at']}  {backup['file_name']:<52} {manifest['format']:<4} "
                f"{manifest['plain']['size']:>12} B  {backup['backup_type']}"
            )
