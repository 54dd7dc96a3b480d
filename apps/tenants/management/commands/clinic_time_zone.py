from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from apps.backups.management.spanish import SpanishCommand
from apps.tenants.selectors import clinics_for_backup
from apps.tenants.services import clinic_time_zone_update


class Command(SpanishCommand):
    help = "Muestra o cambia la zona horaria de una clínica (define su 'hoy' y su 'domingo' para los backups)."

    def add_arguments(self, parser):
        parser.add_argument("schema", help="Esquema de la clínica.")
        parser.add_argument("time_zone", nargs="?", help="Zona IANA, p. ej. America/Mexico_City.")

    def handle(self, *args, schema: str, time_zone: str | None, **options):
        clinic = clinics_for_backup().filter(schema_name=schema).first()
        if clinic is None:
            raise CommandError(f"Clínica desconocida: {schema}")
        if time_zone:
            try:
                clinic_time_zone_update(clinic=clinic, time_zone=time_zone)
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(f"{clinic.name}: {clinic.time_zone}")
