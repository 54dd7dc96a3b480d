from django.apps import AppConfig


class BackupsPageConfig(AppConfig):
    name = "apps.backups_page"
    verbose_name = "Página de backups"
