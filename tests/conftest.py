"""Shared fixtures: a real PostgreSQL test database with two committed clinics.

pytest-django creates the test database and migrates the public schema. The
two clinics (``alfa`` and ``beta``) are created once per session, committed,
so that subprocesses such as pg_dump can see them; each test then runs in a
transaction that is rolled back (the ``db`` fixture).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from apps.tenants.models import Clinic
from apps.tenants.services import clinic_create
from apps.users.models import User

PASSWORD = "clave-de-prueba-123"


@dataclass
class ClinicFixture:
    clinic: Clinic
    domain: str
    admin: User
    staff: User

    def client(self) -> APIClient:
        return APIClient(HTTP_HOST=self.domain)

    def token_for(self, user: User) -> str:
        response = self.client().post("/api/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
        assert response.status_code == 200, response.content
        return response.json()["access"]

    def admin_client(self) -> APIClient:
        client = self.client()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token_for(self.admin)}")
        return client


def make_clinic(schema_name: str, name: str) -> ClinicFixture:
    domain = f"{schema_name}.test.localhost"
    clinic = clinic_create(schema_name=schema_name, name=name, domain=domain)
    with schema_context(schema_name):
        admin = User.objects.create_user(f"admin@{schema_name}.com", PASSWORD, role=User.Role.CLINIC_ADMIN)
        staff = User.objects.create_user(f"recepcion@{schema_name}.com", PASSWORD, role=User.Role.RECEPTIONIST)
    return ClinicFixture(clinic=clinic, domain=domain, admin=admin, staff=staff)


@pytest.fixture(scope="session")
def clinics(django_db_setup, django_db_blocker) -> dict[str, ClinicFixture]:
    with django_db_blocker.unblock():
        return {
            "alfa": make_clinic("alfa", "Clínica Alfa Ñandú"),
            "beta": make_clinic("beta", "Clínica Beta Óptima"),
        }


@pytest.fixture
def alfa(clinics, db) -> ClinicFixture:
    return clinics["alfa"]


@pytest.fixture
def beta(clinics, db) -> ClinicFixture:
    return clinics["beta"]


@pytest.fixture(autouse=True)
def _back_to_public_schema():
    yield
    connection.set_schema_to_public()


def pytest_collection_modifyitems(items):
    # Every test gets the test database; without this a test that uses only
    # the committed session fixtures could run against the development database.
    for item in items:
        item.add_marker(pytest.mark.django_db)
