"""``manage.py check --deploy``: why HTTPS is off, when it is off only because
every host name is local (``config/settings.py``: ``HTTPS``), so an operator who
runs the check with ``DJANGO_DEBUG=false`` on a machine with the default host
names learns what turns Django's four HTTPS warnings off."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from config.env import env_str


@checks.register(checks.Tags.security, deploy=True)
def https_off_for_local_hosts_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG or settings.HTTPS or env_str("DJANGO_HTTPS"):
        return []
    return [
        checks.Info(
            "HTTPS está desactivado porque DJANGO_ALLOWED_HOSTS solo tiene nombres locales "
            f"({', '.join(settings.ALLOWED_HOSTS)}): así make demo y make serve van por HTTP.",
            hint="En producción pon los dominios reales en DJANGO_ALLOWED_HOSTS (o DJANGO_HTTPS=true): "
            "redirección a HTTPS, HSTS y cookies seguras (README: «Production settings»).",
            id="config.I001",
        )
    ]
