from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models.functions import Length
from django_tenants.utils import schema_context

from apps.clinical_history.models import PatientProfile, SessionNote
from apps.payment_system.models import Payment
from apps.tenants.models import Clinic
from apps.tenants.selectors import clinic_row_counts
from apps.users.models import User


@pytest.fixture
def demo_platform(clinics, db):
    """The demo's clinics and schemas are created in the test transaction and rolled back with it."""


def test_demo_is_idempotent_and_its_data_is_varied(demo_platform, capsys):
    call_command("demo", scale=0.2)
    first_output = capsys.readouterr().out
    bienestar = Clinic.objects.get(schema_name="bienestar")
    counts = clinic_row_counts(clinic=bienestar)

    call_command("demo", scale=0.2)
    assert clinic_row_counts(clinic=bienestar) == counts
    assert "Clínica Bienestar" in first_output and "Clínica Mindcare" in first_output
    assert Clinic.objects.get(schema_name="mindcare").get_primary_domain().domain == "mindcare.localhost"

    with schema_context("bienestar"):
        admin = User.objects.get(email="admin@bienestar.com")
        assert admin.role == User.Role.CLINIC_ADMIN
        assert admin.check_password("psicoadmin-demo")
        names = "".join(first + last for first, last in User.objects.values_list("first_name", "last_name"))
        assert any(not char.isascii() for char in names)
        assert SessionNote.objects.annotate(size=Length("content")).filter(size__gte=600).exists()
        amounts = set(Payment.objects.values_list("amount", flat=True))
        assert any(amount != amount.to_integral_value() for amount in amounts)
        assert all(isinstance(amount, Decimal) for amount in amounts)
        assert Payment.objects.filter(paid_at__isnull=True).exists()
        assert Payment.objects.filter(paid_at__isnull=False).exists()
        assert PatientProfile.objects.exclude(emergency_contact={}).exists()
        assert PatientProfile.objects.filter(birth_date__year__lt=2000).exists()
    assert counts["appointments.Appointment"] > 100
    with schema_context("mindcare"):
        assert User.objects.filter(email="admin@mindcare.com").exists()
