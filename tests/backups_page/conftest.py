import pytest
from django_tenants.utils import schema_context

from apps.tenants.models import Clinic
from apps.users.models import User
from tests.conftest import PASSWORD

PAGE = "/backups/"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def clinic_settings_kept(clinics, django_db_blocker):
    """The committed clinics' schedule and time zone are put back after the test."""
    fields = ["backup_schedule", "next_scheduled_backup", "time_zone", "last_backup_at"]
    fields += ["backup_failures", "backup_retry_at", "backup_last_error"]
    with django_db_blocker.unblock():
        saved = {clinic.pk: {f: getattr(clinic, f) for f in fields} for clinic in Clinic.objects.all()}
    yield
    with django_db_blocker.unblock():
        for pk, values in saved.items():
            Clinic.objects.filter(pk=pk).update(**values)


@pytest.fixture
def professional(committed, django_db_blocker):
    """A professional (not an administrator) of clinic alfa, committed."""
    with django_db_blocker.unblock(), schema_context("alfa"):
        user = User.objects.create_user("psicologa@alfa.com", PASSWORD, role=User.Role.PROFESSIONAL)
    yield user
    with django_db_blocker.unblock(), schema_context("alfa"):
        User.objects.filter(pk=user.pk).delete()
