from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models.functions import Length
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.clinical_history.models import PatientProfile, SessionNote
from apps.payment_system.models import Payment
from apps.tenants.models import Clinic
from apps.tenants.selectors import clinic_row_counts
from apps.users.models import User


@pytest.fixture
def demo_platform(committed):
    """The demo commits like the real one (its backups need it); its clinics are dropped afterwards."""
    yield
    for clinic in Clinic.objects.filter(schema_name__in=["bienestar", "mindcare"]):
        clinic.domains.all().delete()
        clinic.delete(force_drop=True)


def test_demo_is_idempotent_and_its_data_is_varied(demo_platform, settings, capsys):
    call_command("demo", scale=0.2)
    first_output = capsys.readouterr().out
    bienestar = Clinic.objects.get(schema_name="bienestar")
    counts = clinic_row_counts(clinic=bienestar)

    call_command("demo", scale=0.2)
    counts_after = clinic_row_counts(clinic=bienestar)
    assert counts_after.pop("backups.BackupRecord", None) is None  # history is not a data app
    assert counts_after == counts
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
        # Each run backs up both clinics, encrypted with the demo's own key.
        records = list(BackupRecord.objects.all())
        assert len(records) == 2
        assert all(record.status == "succeeded" and record.encryption == "age" for record in records)
    identity_file = settings.DATA_DIR / "age" / "identity.txt"
    assert identity_file.read_text().count("AGE-SECRET-KEY-") == 1
    assert not any(settings.BACKUP_LOCAL_ROOT.rglob("identity*"))
