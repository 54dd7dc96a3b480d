from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.tenants.demo import demo_clinics_ensure
from apps.tenants.selectors import clinic_row_counts


class Command(BaseCommand):
    help = "Prepara la plataforma de demostración: migra, crea 'bienestar' y 'mindcare' con datos."

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="Tamaño aproximado de cada clínica en MB de volcado SQL (1 por defecto).",
        )

    def handle(self, *args, scale: float, **options):
        if scale <= 0:
            raise CommandError("--scale debe ser mayor que 0.")
        call_command("migrate_schemas", interactive=False, verbosity=0)
        clinics = demo_clinics_ensure(scale=scale, password=settings.DEMO_PASSWORD)
        for clinic in clinics:
            domain = clinic.get_primary_domain().domain
            self.stdout.write(self.style.SUCCESS(f"🏥 {clinic.name} ({clinic.schema_name}, http://{domain}:8000)"))
            for label, count in clinic_row_counts(clinic=clinic).items():
                self.stdout.write(f"   {label:<40} {count:>8}")
