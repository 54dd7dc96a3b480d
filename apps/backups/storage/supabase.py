"""Backups in a Supabase Storage bucket, through the official ``supabase`` client.

Writing: the stream is spooled to a temporary file on local disk (memory stays
bounded whatever the size), then uploaded with the client's standard upload,
which sends the file as a streamed multipart body, to a hidden temporary name
(``<clinic>/.tmp-<uuid>-<name>``), and finally moved to its final name. An
interrupted write leaves nothing under the final name: the temporary is deleted
on failure, and ``abandoned_writes_remove`` reclaims those of dead processes.
Why not TUS (resumable) uploads: README, "Storage backends".

Reading streams the authenticated object endpoint with httpx (the client's
``download`` returns the whole object as ``bytes``). Nothing is made public:
no public URL is ever asked for, and the bucket must be private.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from apps.backups.errors import StorageError
from apps.backups.storage.base import CHUNK_SIZE, BackupStorage, StoredObject, validate_object_path
from apps.backups.storage.retry import RetryingCalls, RetryPolicy

TEMP_PREFIX = ".tmp-"
LIST_PAGE = 1000
AUTH_HINT = (
    "revisa SUPABASE_KEY (debe ser la clave service_role del proyecto, no la anon) y las políticas "
    "del bucket {bucket!r} en Supabase Storage"
)


class SupabaseBackupStorage(RetryingCalls, BackupStorage):
    label = "Supabase Storage"

    def __init__(
        self,
        *,
        url: str,
        key: str,
        bucket: str = "backups",
        timeout: float = 60,
        retry: RetryPolicy | None = None,
        spool_dir: str | None = None,
    ):
        try:
            import httpx
            from supabase import ClientOptions, create_client
        except ImportError:
            raise ImproperlyConfigured(
                "BACKUP_STORAGE_BACKEND=supabase necesita el cliente oficial: pip install -r requirements.txt "
                "(o pip install supabase)."
            ) from None
        missing = [name for name, value in (("SUPABASE_URL", url), ("SUPABASE_KEY", key)) if not value]
        if missing:
            raise ImproperlyConfigured(
                f"BACKUP_STORAGE_BACKEND=supabase necesita {' y '.join(missing)}: la URL del proyecto "
                "(https://<proyecto>.supabase.co) y su clave service_role (Settings → API)."
            )
        if not bucket:
            raise ImproperlyConfigured("SUPABASE_BUCKET_NAME no puede estar vacío (por defecto: backups).")
        self.http = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)
        try:
            client = create_client(url, key, options=ClientOptions(httpx_client=self.http))
        except Exception as error:  # the client validates the URL and key format
            raise ImproperlyConfigured(f"SUPABASE_URL / SUPABASE_KEY no son válidas: {error}") from None
        self.files = client.storage.from_(bucket)
        self.object_url = f"{str(client.storage_url).rstrip('/')}/object/{quote(bucket)}/"
        self.auth_headers = {"apikey": key, "Authorization": f"Bearer {key}"}
        self.bucket = bucket
        self.retry = retry or RetryPolicy()
        self.spool_dir = spool_dir

    # -- plumbing -----------------------------------------------------------

    def _is_transient(self, error: BaseException) -> bool:
        return _is_transient(error)

    def _describe(self, error: BaseException, attempts: int, what: str) -> StorageError:
        status = _status(error)
        if status in {401, 403}:
            return StorageError(
                f"Supabase Storage rechazó la petición al {what} ({status}): {AUTH_HINT.format(bucket=self.bucket)}."
            )
        if status == 404 and "bucket" in str(getattr(error, "message", "")).lower():
            return StorageError(
                f"El bucket {self.bucket!r} no existe en Supabase Storage: créalo (privado) o revisa "
                "SUPABASE_BUCKET_NAME."
            )
        if _is_transient(error):
            return StorageError(
                f"Supabase Storage no respondió al {what} tras {attempts} intentos "
                f"({status or type(error).__name__}). Inténtalo más tarde."
            )
        return StorageError(f"Error de Supabase Storage al {what}: {status or type(error).__name__}.")

    # -- interface ------------------------------------------------------------

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        validate_object_path(path)
        folder, _, name = path.rpartition("/")
        temporary = f"{folder}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}" if folder else f"{TEMP_PREFIX}{name}"
        descriptor, spool_path = tempfile.mkstemp(prefix="psico-backup-", dir=self.spool_dir)
        try:
            try:
                with os.fdopen(descriptor, "wb") as spool:
                    yield spool
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise StorageError(
                    f"El disco local está lleno: la copia temporal de la subida a Supabase no cabe en "
                    f"{os.path.dirname(spool_path)} ({error.strerror}). Libera espacio en ese disco "
                    f"(o apunta TMPDIR a otro con sitio para un backup comprimido)."
                ) from None
            self._upload(spool_path, temporary)
            try:
                self._call(f"mover {temporary}", lambda: self._move(temporary, path))
            except BaseException:
                self._delete_quietly(temporary)
                raise
        finally:
            os.unlink(spool_path)

    def _upload(self, spool_path: str, temporary: str) -> None:
        # upsert: a retry after a lost response must not fail on its own first attempt.
        options = {"content-type": "application/octet-stream", "upsert": "true", "cache-control": "no-store"}
        try:
            self._call(f"subir {temporary}", lambda: self.files.upload(temporary, spool_path, options))
        except BaseException:
            self._delete_quietly(temporary)
            raise

    def _move(self, source: str, destination: str) -> None:
        from storage3.exceptions import StorageApiError

        try:
            self.files.move(source, destination)
        except StorageApiError as error:
            # A retried move whose first attempt landed finds no source: that is success.
            if _status(error) == 404 and self.exists(destination) and not self.exists(source):
                return
            raise

    def _delete_quietly(self, path: str) -> None:
        try:
            self.delete(path)
        except StorageError:
            pass  # a hidden temporary; abandoned_writes_remove reclaims it later

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        url = self.object_url + quote(validate_object_path(path))

        def start():
            request = self.http.build_request("GET", url, headers=self.auth_headers)
            response = self.http.send(request, stream=True)
            if response.status_code >= 400:
                response.read()
                response.close()
                raise _api_error(response)
            return response

        try:
            response = self._call(f"leer {path}", start)
        except StorageError as error:
            if _status(error.__cause__) in {400, 404}:
                raise StorageError(f"El objeto {path} no existe en {self.label}.") from None
            raise
        try:
            yield io.BufferedReader(_ResponseReader(response), buffer_size=CHUNK_SIZE)
        finally:
            response.close()

    def delete(self, path: str) -> None:
        validate_object_path(path)
        self._call(f"borrar {path}", lambda: self.files.remove([path]))

    def exists(self, path: str) -> bool:
        validate_object_path(path)
        return self._call(f"consultar {path}", lambda: self.files.exists(path))

    def list(self, prefix: str) -> list[StoredObject]:
        folder = prefix.rstrip("/")
        if folder:
            validate_object_path(folder)
        return sorted(self._list_folder(folder, depth=0), key=lambda stored: stored.path)

    def _list_folder(self, folder: str, *, depth: int, temporaries: bool = False) -> list[StoredObject]:
        objects: list[StoredObject] = []
        for offset in range(0, 10_000_000, LIST_PAGE):  # bounded pagination
            options = {"limit": LIST_PAGE, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
            page = self._call(f"listar {folder or '/'}", lambda options=options: self.files.list(folder, options))
            for entry in page:
                name = entry["name"]
                full = f"{folder}/{name}" if folder else name
                if entry.get("id") is None:  # a folder
                    if depth < 8 and not name.startswith("."):
                        objects += self._list_folder(full, depth=depth + 1, temporaries=temporaries)
                elif name.startswith(TEMP_PREFIX) == temporaries and (temporaries or not name.startswith(".")):
                    metadata = entry.get("metadata") or {}
                    modified = entry.get("updated_at") or entry.get("created_at")
                    objects.append(
                        StoredObject(
                            path=full,
                            size=int(metadata.get("size") or 0),
                            modified=datetime.fromisoformat(modified.replace("Z", "+00:00")) if modified else None,
                        )
                    )
            if len(page) < LIST_PAGE:
                break
        return objects

    def abandoned_writes_remove(self, prefix: str, *, older_than: datetime) -> int:
        folder = validate_object_path(prefix.rstrip("/"))
        stale = [
            item.path
            for item in self._list_folder(folder, depth=8, temporaries=True)
            if item.modified is not None and item.modified < older_than
        ]
        if stale:
            self._call(f"borrar temporales de {prefix}", lambda: self.files.remove(stale))
        return len(stale)


class _ResponseReader(io.RawIOBase):
    """A streamed httpx response as a raw stream; a connection lost mid-way is a StorageError."""

    def __init__(self, response):
        self.chunks = response.iter_bytes(CHUNK_SIZE)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.pending:
            try:
                self.pending = next(self.chunks, b"")
            except Exception as error:
                raise StorageError(
                    f"Se perdió la conexión con Supabase Storage durante la lectura: {type(error).__name__}."
                ) from None
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def _api_error(response) -> Exception:
    """The client's own error type for a failed raw request, with the body's statusCode."""
    from storage3.exceptions import StorageApiError

    try:
        body = response.json()
        return StorageApiError(body["message"], body["error"], body["statusCode"])
    except (KeyError, TypeError, ValueError):
        return StorageApiError(response.text[:200], "InternalError", response.status_code)


def _status(error: BaseException | None) -> int:
    """HTTP status of a client error: storage3 errors carry the API's ``statusCode``
    (Supabase answers some auth failures as 400 with statusCode 403 in the body)."""
    status = getattr(error, "status", None)
    if status is None:
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
    try:
        return int(status)
    except (TypeError, ValueError):
        return 0


def _is_transient(error: BaseException) -> bool:
    import httpx

    if isinstance(error, httpx.TransportError):
        return True  # timeouts, refused or dropped connections
    status = _status(error)
    return status >= 500 or status == 429
