"""System checks (``manage.py check``, run by runserver and migrate) for the
backup keys: a mistake here only shows on the day a backup must be opened."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from apps.backups.engine import crypto
from apps.backups.errors import EncryptionError


@checks.register(checks.Tags.security)
def encryption_keys_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        recipients = crypto.recipients()
        identities = crypto.identities()
    except EncryptionError as error:
        return [checks.Error(str(error), id="backups.E001")]
    if not settings.BACKUP_AGE_RECIPIENTS or not identities:
        return []  # no recipients: the identity's own key encrypts; no identity: opened elsewhere, on purpose
    ours = {str(identity.to_public()) for identity in identities}
    if ours.isdisjoint(str(recipient) for recipient in recipients):
        return [
            checks.Warning(
                "Los backups se cifran para claves que BACKUP_AGE_IDENTITY_FILE no abre: "
                "las descargas y restauraciones desde este servidor fallarán.",
                hint="Añade su clave pública a BACKUP_AGE_RECIPIENTS, o quita BACKUP_AGE_IDENTITY_FILE "
                "si las claves privadas se guardan fuera de este servidor a propósito.",
                id="backups.W001",
            )
        ]
    return []


@checks.register(checks.Tags.security)
def storage_public_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A bucket anyone can read exposes every clinic's manifest (name, domains, row
    counts) and, unencrypted, its data. One request, not retried, with a short
    time-out: Django runs this check before most management commands."""
    from django.core.exceptions import ImproperlyConfigured

    from apps.backups.errors import StorageError
    from apps.backups.storage import get_backup_storage

    try:
        storage = get_backup_storage(for_check=True)
    except ImproperlyConfigured:
        return []  # reported when the backend is used, with its own hint
    try:
        problem = storage.public_access_problem()
    except StorageError as error:
        return [
            checks.Warning(
                f"No se pudo comprobar si el almacenamiento de backups es privado: {error}", id="backups.W003"
            )
        ]
    if not problem:
        return []
    if settings.BACKUP_STORAGE_BACKEND == "supabase":
        return [checks.Error(problem, hint="Los backups no se suben a un bucket público.", id="backups.E002")]
    return [checks.Warning(problem, id="backups.W002")]
