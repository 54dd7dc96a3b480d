"""The backup exception family. Services raise these; the API maps them to JSON
errors (``config.api_errors``) and commands to ``CommandError``.
Messages are user-facing (Spanish) and never contain secrets."""


class BackupError(Exception):
    """Base class: something about a backup went wrong; ``str()`` says what.

    ``public_message``, when set, is what a clinic admin is told instead of
    ``str()`` (server faults: the detail goes to the log only)."""

    status_code = 500
    public_message: str | None = None


class DumpError(BackupError):
    """The database could not be dumped (pg_dump missing, too old or failing)."""


class StorageError(BackupError):
    """The storage backend refused or lost an operation."""

    status_code = 503


class IntegrityError(BackupError):
    """Stored bytes do not match the checksum recorded for them."""


class BackupTooLargeError(BackupError):
    status_code = 400


class BackupNotAvailableError(BackupError):
    """The backup exists but cannot be read (failed, still running, or deleted)."""

    status_code = 409


class BackupNotDeletableError(BackupError):
    """The backup must be kept (automatic, running, or the clinic's newest good one)."""

    status_code = 409


class EncryptionError(BackupError):
    """Keys are missing or do not open the stored object."""


class BackupInterruptedError(BackupError):
    """The process is stopping (SIGTERM, Ctrl-C): the backup was abandoned, not broken."""

    def __init__(self, message: str | None = None):
        if message is None:
            from apps.backups.interrupts import stop_signal_name  # it imports this module

            message = f"Interrumpido: el proceso recibió {stop_signal_name()}."
        super().__init__(message)


class ScheduleInFutureError(BackupError):
    """An automatic backup run was asked to act at an instant that has not come yet."""

    status_code = 400

    def __init__(self, moment):
        super().__init__(
            f"{moment.isoformat()} aún no ha llegado: un backup real no puede ocupar un turno futuro "
            "(usa --dry-run para ver qué se haría)."
        )


class RestoreError(BackupError):
    """A restore refused for its input (a file that is not this clinic's backup, too large)."""

    status_code = 400


class RestoreFailedError(RestoreError):
    """A restore failed on the server's side (psql missing or failing, an unexpected
    error): nothing was changed. ``str()`` has the detail for the log; the clinic
    admin gets ``public_message``."""

    status_code = 500
    public_message = (
        "La restauración falló por un error del servidor; no se cambió nada. "
        "El detalle quedó en el registro del servidor: avisa al operador de la plataforma."
    )


class UploadSpaceError(RestoreError):
    """The server has no room to receive an upload (its temporary folder is full)."""

    status_code = 507


class ClinicBusyError(BackupError):
    """Another backup, restore, drill or recovery of the same clinic holds it
    (``apps.backups.locking``): refused at once, nothing was done. Try again later."""

    status_code = 409


def size_text(size: int) -> str:
    """A size for a message: ``100 MB``, ``97.7 KB``, ``512 bytes`` (MB = MiB, as the settings count)."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"
