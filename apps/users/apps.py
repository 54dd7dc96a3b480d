from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "apps.users"
    verbose_name = "Usuarios"

    def ready(self):
        from apps.users import schema  # noqa: F401 (registers the OpenAPI extension)
