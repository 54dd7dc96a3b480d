"""System check (``manage.py check``, runserver, migrate): no transaction-mode
pooler between the application and PostgreSQL (see ``apps/tenants/pooler.py``)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from apps.tenants.pooler import CHECK_ID, pooler_problem


@checks.register(checks.Tags.security)
def transaction_pooler_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    problem = pooler_problem(settings.DATABASES["default"])
    if not problem:
        return []
    return [
        checks.Error(
            problem,
            hint="Un pooler en modo sesión, o ninguno, mantiene el search_path de cada clínica.",
            id=CHECK_ID,
        )
    ]
