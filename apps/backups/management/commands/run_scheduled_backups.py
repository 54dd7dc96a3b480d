import threading

from django.conf import settings
from django.core.management.base import CommandError

from apps.backups.errors import ScheduleInFutureError
from apps.backups.interrupts import stop_on_signals, stop_requested, stop_signal_name
from apps.backups.management.commands._time import parse_now
from apps.backups.management.spanish import SpanishCommand
from apps.backups.monitoring.status import health_alert_check
from apps.backups.scheduling.run import ScheduledOutcome, scheduled_backups_preview, scheduled_backups_run
from apps.backups.scheduling.selectors import DueBackup
from apps.backups.storage import get_backup_storage


class Command(SpanishCommand):
    help = "Hace los backups automáticos que tocan (daily/weekly/scheduled). Pensado para un cron cada minuto."
    # Run every minute by cron: skip the URL/admin system checks at each start.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=1, help="Clínicas respaldadas a la vez (por defecto 1).")
        parser.add_argument(
            "--now",
            help=(
                "Para pruebas y operaciones: evaluar las reglas como si fuera este instante (ISO 8601, con zona). "
                "Un instante futuro solo con --dry-run."
            ),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Muestra qué clínicas se respaldarían, sin hacer ni anotar nada."
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Hacer los backups en este proceso aunque haya un broker de Celery configurado.",
        )

    def handle(self, *args, workers: int, now: str | None, dry_run: bool, inline: bool = False, **options):
        if workers < 1:
            raise CommandError("--workers debe ser 1 o más.")
        if dry_run:
            self._preview(parse_now(now))
            return
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
        moment = parse_now(now)
        with stop_on_signals():
            try:
                outcomes = scheduled_backups_run(now=moment, workers=workers, on_start=on_start, on_done=on_done)
            except ScheduleInFutureError as error:
                raise CommandError(str(error)) from None
            # Every minute, so operators hear of a degraded health even if nobody polls /health/backups/.
            health_alert_check(now=moment)
            if stop_requested():
                raise CommandError(
                    f"Interrumpido ({stop_signal_name()}): los backups pendientes se harán en la próxima ejecución."
                )
        succeeded = sum(outcome.status == "succeeded" for outcome in outcomes)
        failed = sum(outcome.status == "failed" for outcome in outcomes)
        summary = f"Verificación de backups finalizada: {succeeded} correcto(s), {failed} fallido(s)."
        if failed:
            # Non-zero exit so the cron platform flags the run; they are retried with back-off.
            raise CommandError(f"❌ {summary} Los fallidos se reintentarán más tarde.")
        self.stdout.write(f"✅ {summary}")

    def _preview(self, now) -> None:
        due = scheduled_backups_preview(now=now)
        when = f" a las {now.isoformat()}" if now else ""
        self.stdout.write(f"🔎 Simulación{when}: no se hace ni se anota nada.")
        for item in due:
            self.stdout.write(f"   Se respaldaría: {item.name} ({item.schema_name}), turno {item.slot}")
        self.stdout.write(f"✅ {len(due)} clínica(s) tocan backup.")

    def _enqueue(self, now: str | None) -> None:
        """With a broker: claim the due slots and leave the backups to the workers."""
        from apps.backups.jobs.services import scheduled_backups_enqueue

        self.stdout.write("⏳ Verificando backups programados...")
        try:
            enqueued = scheduled_backups_enqueue(now=parse_now(now))
        except ScheduleInFutureError as error:
            raise CommandError(str(error)) from None
        for item in enqueued:
            self.stdout.write(f"📨 En cola: {item.clinic_name} (tarea {item.job_id})")
        self.stdout.write(f"✅ {len(enqueued)} backup(s) en cola para los workers.")
