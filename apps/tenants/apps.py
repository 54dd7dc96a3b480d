from django.apps import AppConfig
from django.db.backends.signals import connection_created


class TenantsConfig(AppConfig):
    name = "apps.tenants"
    verbose_name = "Clínicas"

    def ready(self):
        from apps.tenants import checks  # noqa: F401 (registers the system checks)
        from apps.tenants.pooler import refuse_pooled_connection
        from config import checks as config_checks  # noqa: F401 (the deploy check's note on HTTPS)

        connection_created.connect(refuse_pooled_connection, dispatch_uid="refuse_pooled_connection")
