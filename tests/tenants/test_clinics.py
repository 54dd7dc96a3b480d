from django.db import connection
from django_tenants.utils import schema_context

from apps.professionals.models import Professional

CLINIC_TABLES = {
    "users_user",
    "clinical_history_patientprofile",
    "professionals_professional",
    "appointments_appointment",
    "chat_conversation",
    "chat_message",
    "clinical_history_clinicalrecord",
    "clinical_history_sessionnote",
    "payment_system_payment",
}


def tables_in(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def test_clinic_creation_creates_its_schema_and_tables(alfa):
    assert CLINIC_TABLES <= tables_in("alfa")
    assert "tenants_clinic" not in tables_in("alfa")


def test_public_schema_holds_only_shared_tables(alfa):
    public = tables_in("public")
    assert {"tenants_clinic", "tenants_domain"} <= public
    clinical = {name for name in CLINIC_TABLES if name not in {"users_user"}}
    assert not clinical & public


def test_data_written_in_one_clinic_is_invisible_from_another(alfa, beta):
    with schema_context("alfa"):
        Professional.objects.create(
            full_name="Begoña Ibáñez", specialty="Neuropsicología", license_number="ALF-1", session_fee="60.00"
        )
        assert Professional.objects.filter(full_name="Begoña Ibáñez").count() == 1
    with schema_context("beta"):
        assert not Professional.objects.filter(full_name="Begoña Ibáñez").exists()
