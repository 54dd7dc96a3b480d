"""The ``--now`` option of the scheduling commands (tests and operations)."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import CommandError


def parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now no es una fecha ISO 8601: {value!r}") from None
    if moment.tzinfo is None:
        raise CommandError("--now necesita zona horaria (p. ej. 2025-11-25T03:00:00+00:00).")
    return moment
