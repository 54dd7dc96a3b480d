import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.backups.interrupts import stop_on_sigterm, stop_requested
from apps.backups.management.commands._time import parse_now
from apps.backups.scheduling.run import ScheduledOutcome, scheduled_backups_run
from apps.backups.scheduling.selectors import DueBackup
from apps.backups.storage import get_backup_storage


class Command(BaseCommand):
    help = "Hace los backups automáticos que tocan (daily/weekly/scheduled). Pensado para un cron cada minuto."
    # Run every minute by cron: skip the URL/admin system checks at each start.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=1, help="Clínicas respaldadas a la vez (por defecto 1).")
        parser.add_argument(
            "--now",
            help="Para pruebas y operaciones: evaluar las reglas como si fuera este instante (ISO 8601, con zona).",
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Hacer los backups en este proceso aunque haya un broker de Celery configurado.",
        )

    def handle(self, *args, workers: int, now: str | None, inline: bool = False, **options):
        if workers < 1:
            raise CommandError("--workers debe ser 1 o más.")
        if settings.CELERY_BROKER_CONFIGURED and not inline:
            self._enqueue(now)
            return
        label = get_backup_storage().label
        lock = threading.Lock()

        def start_line(due: DueBackup) -> str:
            return f"📦 Iniciando backup para: {due.name}..."

        def on_start(due: DueBackup) -> None:
            if workers == 1:
                self.stdout.write(start_line(due))

        def on_done(outcome: ScheduledOutcome) -> None:
            if outcome.status == "skipped":
                if outcome.busy:
                    lines = [start_line(outcome.due)] if workers > 1 else []
                    lines.append(f"   -> Omitida: {outcome.error} Se intentará en la próxima ejecución.")
                    with lock:
                        for line in lines:
                            self.stdout.write(line)
                return
            # Several workers: a clinic's lines are written together so they stay readable.
            lines = [start_line(outcome.due)] if workers > 1 else []
            if outcome.status == "succeeded":
                lines.append(f"   -> Subido exitosamente a {label}")
            else:
                lines.append(f"   -> Error en {outcome.due.name}: {outcome.error}")
                lines.append(
                    f"      Fallo consecutivo n.º {outcome.failures}; "
                    f"próximo intento desde {outcome.retry_at:%Y-%m-%d %H:%M:%S %Z}."
                )
            with lock:
                for line in lines:
                    (self.stdout if outcome.status == "succeeded" or line.startswith("📦") else self.stderr).write(line)

        self.stdout.write("⏳ Verificando backups programados...")
        with stop_on_sigterm():
            outcomes = scheduled_backups_run(now=parse_now(now), workers=workers, on_start=on_start, on_done=on_done)
            if stop_requested():
                raise CommandError("Interrumpido (SIGTERM): los backups pendientes se harán en la próxima ejecución.")
        self.stdout.write("✅ Verificación de backups finalizada.")
        failed = [outcome for outcome in outcomes if outcome.status == "failed"]
        if failed:
            # Non-zero exit so the cron platform flags the run; they are retried with back-off.
            raise CommandError(f"{len(failed)} backup(s) automático(s) fallaron; se reintentarán más tarde.")

    def _enqueue(self, now: str | None) -> None:
        """With a broker: claim the due slots and leave the backups to the workers."""
        from apps.backups.jobs.services import scheduled_backups_enqueue

        self.stdout.write("⏳ Verificando backups programados...")
        enqueued = scheduled_backups_enqueue(now=parse_now(now))
        for item in enqueued:
            self.stdout.write(f"📨 En cola: {item.clinic_name} (tarea {item.job_id})")
        self.stdout.write(f"✅ {len(enqueued)} backup(s) en cola para los workers.")
