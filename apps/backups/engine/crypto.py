"""age keys for backups: recipients encrypt, identities decrypt.

Stored objects are standard age files (X25519 recipients), so ``age -d -i key``
opens them without this software.
"""

from __future__ import annotations

from pathlib import Path

import pyrage
from django.conf import settings

from apps.backups.errors import EncryptionError


def _identity_lines() -> list[str]:
    path = settings.BACKUP_AGE_IDENTITY_FILE
    if not path:
        return []
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise EncryptionError(f"No se puede leer BACKUP_AGE_IDENTITY_FILE: {error.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]


def identities() -> list:
    try:
        return [pyrage.x25519.Identity.from_str(line) for line in _identity_lines()]
    except pyrage.IdentityError:
        raise EncryptionError("BACKUP_AGE_IDENTITY_FILE no contiene una clave age válida.") from None


def recipients() -> list:
    """Configured recipients, or those of the configured identity; empty means no encryption."""
    try:
        configured = [pyrage.x25519.Recipient.from_str(key) for key in settings.BACKUP_AGE_RECIPIENTS]
    except pyrage.RecipientError:
        raise EncryptionError("BACKUP_AGE_RECIPIENTS contiene una clave pública age no válida.") from None
    return configured or [identity.to_public() for identity in identities()]


def identity_file_create(path: Path) -> str:
    """Write a new private key (mode 0600) in age's own file format; return its public key."""
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600, exist_ok=False)
    path.write_text(f"# public key: {public}\n{identity}\n")
    return public
