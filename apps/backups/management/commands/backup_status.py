import json

from django.conf import settings
from django.utils import timezone

from apps.backups.management.commands._time import parse_now
from apps.backups.management.spanish import SpanishCommand
from apps.backups.monitoring.status import backup_status_list
from apps.backups.restore.swap import restore_leftover_schemas_list


def _age(now, moment) -> str:
    if moment is None:
        return "—"
    seconds = int((now - moment).total_seconds())
    days, rest = divmod(max(seconds, 0), 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"


class Command(SpanishCommand):
    help = "Estado de los backups por clínica: últimos 30 días, último backup, próximo y fallos seguidos."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Salida en JSON (para otras herramientas)."
        )
        parser.add_argument("--now", help="Para pruebas y operaciones: evaluar como si fuera este instante (ISO 8601).")

    def handle(self, *args, as_json: bool, now: str | None, **options):
        now = parse_now(now) or timezone.now()
        statuses = backup_status_list(now=now)
        if as_json:
            self._write_json(statuses, now)
            return
        header = ("clínica", "esquema", "frecuencia", "backups 30d", "MB 30d", "último backup", "antigüedad",
                  "estado", "próximo", "fallos")  # fmt: skip
        rows = [
            (
                s.name,
                s.schema_name,
                s.backup_schedule,
                str(s.backups_30d),
                f"{s.bytes_30d / 1_048_576:.1f}",
                _when(s.last_backup_at),
                _age(now, s.last_backup_at),
                s.last_backup_status or "—",
                _when(s.next_due_at),
                str(s.consecutive_failures),
            )
            for s in statuses
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        interrupted = [item for item in restore_leftover_schemas_list() if item.interrupted]
        if interrupted:
            self.stdout.write(
                f"⚠️  Esquemas dejados por restauraciones o simulacros interrumpidos "
                f"(cleanup_old_backups los borra tras {settings.BACKUP_RESTORE_KEEP_DAYS} días):"
            )
            for item in interrupted:
                self.stdout.write(f"   {item.name}  (clínica {item.clinic_prefix}, desde {_when(item.created_at)})")

    def _write_json(self, statuses, now) -> None:
        def value(v):
            return v.isoformat() if hasattr(v, "isoformat") else v

        payload = [{key: value(v) for key, v in vars(s).items()} for s in statuses]
        leftovers = [
            {"schema": item.name, "clinic": item.clinic_prefix, "kind": item.mark.strip("_"),
             "interrupted": item.interrupted, "since": item.created_at.isoformat()}
            for item in restore_leftover_schemas_list()
        ]  # fmt: skip
        self.stdout.write(
            json_dumps({"generated_at": now.isoformat(), "clinics": payload, "restore_schemas": leftovers})
        )


def json_dumps(data) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
