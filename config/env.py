"""Reading configuration from the environment, with errors a person can act on."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


class ConfigurationError(ImproperlyConfigured):
    """A setting is missing or malformed; the message says what to fix."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} no es un booleano válido (usa true/false).")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} debe ser un número entero.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


SMTP_SCHEMES = {"smtp": (False, False), "smtp+tls": (True, False), "smtps": (False, True), "smtp+ssl": (False, True)}


def email_settings(url: str) -> dict:
    """Django's EMAIL_* settings from one URL (``EMAIL_URL``):

    ``smtp://user:password@host:587?starttls=true`` (or ``smtp+tls://``: STARTTLS),
    ``smtps://user:password@host:465`` (TLS from the start), ``smtp://host:25``
    (plain, for a relay on the same network). Empty: no email is sent.
    """
    if not url:
        return {"EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"}
    parts = urlsplit(url)
    if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
        raise ConfigurationError(
            "EMAIL_URL no es válida. Formato: smtp://usuario:clave@servidor:587?starttls=true o smtps://…:465"
        )
    use_tls, use_ssl = SMTP_SCHEMES[parts.scheme]
    query = {key.lower(): values[-1].lower() for key, values in parse_qs(parts.query).items()}
    use_tls = use_tls or query.get("starttls", query.get("tls", "")) in {"1", "true", "yes"}
    try:
        port = parts.port or (465 if use_ssl else 587 if use_tls else 25)
    except ValueError:
        raise ConfigurationError("EMAIL_URL tiene un puerto no válido.") from None
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": 10,
    }
