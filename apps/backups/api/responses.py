"""Streaming a backup's plain file to the client."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from django.http import StreamingHttpResponse

from apps.backups.models import BackupRecord
from apps.backups.services import backup_download_record, backup_open_plain
from apps.users.sign_ins import client_address

CONTENT_TYPES = {"sql": "application/sql", "json": "application/json"}


class _ClosingChunks:
    """Iterates the chunks; Django calls ``close()`` when the response ends,
    even if it was never iterated, which releases the storage stream.
    ``on_send`` runs once, just before the first byte leaves."""

    def __init__(self, stack: ExitStack, chunks, on_send: Callable[[], None] | None):
        self._stack = stack
        self._chunks = chunks
        self._on_send = on_send

    def __iter__(self):
        for chunk in self._chunks:
            if self._on_send:
                self._on_send()
                self._on_send = None
            yield chunk

    def close(self) -> None:
        self._stack.close()


def backup_file_response(record: BackupRecord, *, on_send: Callable[[], None] | None = None) -> StreamingHttpResponse:
    """The ``.sql``/``.json`` under the guide's name. The stored checksum is
    verified before the response starts; the plain one as it streams, the last
    chunk held back until it matches (a client never gets a complete file that
    is wrong: the transfer breaks short of Content-Length)."""
    stack = ExitStack()
    try:
        chunks = stack.enter_context(backup_open_plain(record=record))
    except BaseException:
        stack.close()
        raise
    response = StreamingHttpResponse(_ClosingChunks(stack, chunks, on_send), content_type=CONTENT_TYPES[record.format])
    response["Content-Disposition"] = f'attachment; filename="{record.file_name}"'
    response["Content-Length"] = str(record.file_size)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def backup_download_response(request, record: BackupRecord) -> StreamingHttpResponse:
    """The file for ``request.user`` (API or page), recorded as downloaded when its
    first byte is sent (not for HEAD, nor when the stored object fails its check
    and nothing is sent)."""

    def download_record() -> None:
        backup_download_record(
            clinic=request.tenant,
            record=record,
            user=request.user,
            ip_address=client_address(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )

    return backup_file_response(record, on_send=None if request.method == "HEAD" else download_record)
