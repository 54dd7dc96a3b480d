from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from apps.backups.management.spanish import SpanishCommand
from apps.tenants.services import platform_domain_add, platform_domains


class Command(SpanishCommand):
    help = (
        "Muestra o añade los dominios de la plataforma (el tenant público): solo en ellos responden "
        "/admin/ y /health/backups/."
    )

    def add_arguments(self, parser):
        parser.add_argument("domain", nargs="?", help="Dominio que añadir, p. ej. admin.psicoadmin.com.")

    def handle(self, *args, domain: str | None, **options):
        if domain:
            try:
                platform_domain_add(domain=domain)
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from None
        domains = platform_domains()
        self.stdout.write("Dominios de la plataforma: " + (", ".join(domains) or "ninguno (añade uno)"))
