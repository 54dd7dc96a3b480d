"""Operators: a clinic's latest sign-ins, failed and successful."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_tenant_model, schema_context

from apps.users.sign_ins import sign_ins_recent


class Command(BaseCommand):
    help = "Últimos inicios de sesión (correctos y fallidos) de una clínica: quién, cuándo, desde dónde."

    def add_arguments(self, parser):
        parser.add_argument("schema", help="El schema de la clínica (p. ej. bienestar).")
        parser.add_argument("--email", help="Solo los intentos de esta cuenta.")
        parser.add_argument("--limit", type=int, default=50)

    def handle(self, *args, schema: str, email: str | None, limit: int, **options):
        if not get_tenant_model().objects.filter(schema_name=schema).exclude(schema_name="public").exists():
            raise CommandError(f"No existe la clínica '{schema}'.")
        with schema_context(schema):
            entries = sign_ins_recent(limit=limit, email=email)
        if not entries:
            self.stdout.write("Sin inicios de sesión registrados.")
        for entry in entries:
            outcome = "correcto" if entry["succeeded"] else ("fallido, bloqueó" if entry["locked_out"] else "fallido")
            self.stdout.write(
                f"{entry['at']:%Y-%m-%d %H:%M:%S %Z}  {outcome:<16} {entry['email'] or '-':<32} "
                f"{entry['ip_address'] or '-':<39} {entry['path']}  {entry['user_agent'][:60]}"
            )
