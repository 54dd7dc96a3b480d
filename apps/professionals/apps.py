from django.apps import AppConfig


class ProfessionalsConfig(AppConfig):
    name = "apps.professionals"
    verbose_name = "Profesionales"
