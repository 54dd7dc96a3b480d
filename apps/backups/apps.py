from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "apps.backups"
    verbose_name = "Backups"

    def ready(self):
        from apps.backups import checks  # noqa: F401 (registers the system checks)
