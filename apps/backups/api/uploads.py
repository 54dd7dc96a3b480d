"""Receiving a restore upload (API and backups page alike)."""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from apps.backups.errors import UploadSpaceError

logger = logging.getLogger(__name__)


@contextmanager
def upload_space_guard(request) -> Iterator[None]:
    """Around the first read of a request's body: a full temporary folder while
    receiving an upload becomes ``UploadSpaceError`` (507, saying so), and the
    partial temporary file is removed at once instead of when the worker exits."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        for handler in request.upload_handlers:
            partial = getattr(handler, "file", None)
            if partial is not None:
                partial.close()  # a TemporaryUploadedFile: closing deletes it
        folder = settings.FILE_UPLOAD_TEMP_DIR or "TMPDIR"
        logger.error("Subida de restauración rechazada: %s en %s", error.strerror, folder)
        raise UploadSpaceError(
            "El servidor no tiene espacio para recibir el archivo (su carpeta temporal está llena); "
            "no se restauró nada. Inténtalo más tarde o avisa al operador de la plataforma."
        ) from None
