from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "apps.users"
    verbose_name = "Usuarios"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from apps.users.sessions import session_bind_to_clinic

        user_logged_in.connect(session_bind_to_clinic, dispatch_uid="users.session_bind_to_clinic")
