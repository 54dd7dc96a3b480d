"""Read-only queries about clinics."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django_tenants.utils import tenant_context

from apps.tenants.models import Clinic


def clinic_data_models() -> list:
    """Concrete models of the clinic data apps, in app order."""
    models = []
    for label in settings.CLINIC_DATA_APPS:
        models += [m for m in apps.get_app_config(label).get_models() if not m._meta.proxy]
        models += [
            field.remote_field.through
            for m in apps.get_app_config(label).get_models()
            for field in m._meta.local_many_to_many
            if field.remote_field.through._meta.auto_created
        ]
    return models


def clinic_row_counts(*, clinic: Clinic) -> dict[str, int]:
    """Rows per clinic data table (``app_label.Model``) of one clinic."""
    with tenant_context(clinic):
        return {model._meta.label: model.objects.count() for model in clinic_data_models()}


def clinics_for_backup():
    """Every clinic except the public (platform) tenant."""
    return Clinic.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
