from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "apps.users"
    verbose_name = "Usuarios"

    def ready(self):
        from apps.users import signals  # noqa: F401 (token revocation, sign-in time)
