"""``manage.py platform_domain``: the operator's own domain for ``/admin/`` and
``/health/backups/`` on a fresh deployment (no public tenant yet, no demo)."""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from apps.tenants.models import Clinic, Domain

PLATFORM = "operaciones.test.localhost"


def test_a_fresh_deployment_reaches_the_admin_on_the_domain_it_names(alfa, capsys):
    Clinic.objects.filter(schema_name="public").delete()  # none yet: only clinics were created
    assert Client(HTTP_HOST=PLATFORM).get("/admin/").status_code == 404

    call_command("platform_domain", "Operaciones.test.localhost")
    call_command("platform_domain", PLATFORM)  # again: nothing new
    assert capsys.readouterr().out.splitlines()[-1] == f"Dominios de la plataforma: {PLATFORM}"

    response = Client(HTTP_HOST=PLATFORM).get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Client(HTTP_HOST=PLATFORM).get("/health/backups/").status_code == 401  # there, asking for its token
    assert list(Domain.objects.filter(tenant__schema_name="public").values_list("domain", "is_primary")) == [
        (PLATFORM, True)
    ]


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("alfa.test.localhost", "«alfa.test.localhost» es el dominio de la clínica Clínica Alfa Ñandú."),
        ("https://admin.psicoadmin.com/", "no es un nombre de dominio (sin https:// ni puerto"),
        ("admin.psicoadmin.com:8000", "no es un nombre de dominio"),
    ],
)
def test_a_clinics_domain_or_a_url_is_refused(alfa, domain, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("platform_domain", domain)
    assert Domain.objects.get(domain="alfa.test.localhost").tenant.schema_name == "alfa"
