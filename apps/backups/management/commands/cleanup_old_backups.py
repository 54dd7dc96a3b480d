from django.core.management.base import CommandError

from apps.backups.management.commands._time import parse_now
from apps.backups.management.spanish import SpanishCommand
from apps.backups.scheduling.retention import backups_cleanup


class Command(SpanishCommand):
    help = (
        "Aplica la retención: manuales para siempre, automáticos 30 días, semanales 6 meses; "
        "nunca el último backup correcto de una clínica. Barre también fallidos, huérfanos y esquemas apartados."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Muestra lo que se borraría sin borrar nada.")
        parser.add_argument("--now", help="Para pruebas y operaciones: evaluar como si fuera este instante (ISO 8601).")

    def handle(self, *args, dry_run: bool, now: str | None, **options):
        verb = "Se borraría" if dry_run else "Borrado"
        self.stdout.write(
            "🧹 Limpiando backups antiguos" + (" (simulación: no se borra nada)..." if dry_run else "...")
        )
        report = backups_cleanup(now=parse_now(now), dry_run=dry_run)
        for item in report.backups:
            self.stdout.write(f"   {verb}: {item.schema_name}/{item.what} ({item.reason})")
        for item in report.orphans:
            self.stdout.write(f"   {verb}: {item.what} ({item.reason})")
        for item in report.schemas:
            self.stdout.write(f"   {verb} el esquema {item.what} ({item.reason})")
        for item in report.ddl_cache:
            self.stdout.write(f"   {verb}: {item.what} ({item.reason})")
        for item in report.schemas_kept:
            self.stdout.write(f"   ⚠️  Esquema {item.what} ({item.reason})")
        for error in report.errors:
            self.stderr.write(f"   -> Error: {error}")
        totals = (
            f"{len(report.backups)} backup(s), {len(report.orphans)} objeto(s) huérfano(s), "
            f"{len(report.schemas)} esquema(s) apartado(s), {len(report.ddl_cache)} DDL en caché"
        )
        self.stdout.write(f"✅ Limpieza finalizada: {totals}" + (" se borrarían." if dry_run else " borrados."))
        if report.errors:
            raise CommandError(f"{len(report.errors)} elemento(s) no se pudieron borrar.")
