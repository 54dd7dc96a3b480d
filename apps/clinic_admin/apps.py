from django.apps import AppConfig


class ClinicAdminConfig(AppConfig):
    name = "apps.clinic_admin"
    verbose_name = "Administración de la clínica"
