from django.apps import AppConfig


class ClinicalHistoryConfig(AppConfig):
    name = "apps.clinical_history"
    verbose_name = "Historia clínica"
