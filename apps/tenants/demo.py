"""The demo platform: a public tenant and two clinics with admins and data."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django_tenants.utils import tenant_context

from apps.tenants.demo_data import clinic_has_data, demo_data_generate
from apps.tenants.models import Clinic, Domain
from apps.tenants.services import clinic_create
from apps.users.models import User


@dataclass(frozen=True)
class DemoClinic:
    schema_name: str
    name: str
    domain: str


DEMO_CLINICS = [
    DemoClinic("bienestar", "Clínica Bienestar", "bienestar.localhost"),
    DemoClinic("mindcare", "Clínica Mindcare", "mindcare.localhost"),
]


def public_tenant_ensure() -> Clinic:
    public, _ = Clinic.objects.get_or_create(schema_name=settings.PUBLIC_SCHEMA_NAME, defaults={"name": "PsicoAdmin"})
    Domain.objects.get_or_create(domain="localhost", defaults={"tenant": public, "is_primary": True})
    return public


def demo_clinics_ensure(*, scale: float, password: str) -> list[Clinic]:
    """Create whatever of the demo is missing; existing clinics and data are left as they are."""
    public_tenant_ensure()
    clinics = []
    for demo in DEMO_CLINICS:
        clinic = Clinic.objects.filter(schema_name=demo.schema_name).first()
        if clinic is None:
            clinic = clinic_create(schema_name=demo.schema_name, name=demo.name, domain=demo.domain)
        with tenant_context(clinic):
            with transaction.atomic():
                if not User.objects.filter(email=f"admin@{demo.schema_name}.com").exists():
                    User.objects.create_user(
                        f"admin@{demo.schema_name}.com",
                        password,
                        first_name="Administración",
                        last_name=demo.name,
                        role=User.Role.CLINIC_ADMIN,
                    )
                if not clinic_has_data():
                    demo_data_generate(schema_name=demo.schema_name, scale=scale)
        clinics.append(clinic)
    return clinics
