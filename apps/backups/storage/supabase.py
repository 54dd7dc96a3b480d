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

import base64
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from apps.backups.errors import StorageError, size_text
from apps.backups.storage.base import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    BackupStorage,
    StoredObject,
    final_path_of_temporary,
    temporary_name,
    validate_object_path,
)
from apps.backups.storage.retry import RetryingCalls, RetryPolicy

LIST_PAGE = 1000
AUTH_HINT = (
    "revisa SUPABASE_KEY (debe ser la clave service_role del proyecto, no la anon) y las políticas "
    "del bucket {bucket!r} en Supabase Storage"
)
SIZE_HINT = (
    "el límite de tamaño de archivo del bucket {bucket!r} (file_size_limit: {bucket_limit}) o el límite de "
    "subida del proyecto (50 MB en el plan gratuito, y manda sobre el del bucket). Solo un plan de pago "
    "permite subirlo (Storage → Settings → Upload file size limit); el endpoint S3 de Supabase no lo evita: "
    "ese límite se aplica también a cada parte"
)
# Sent as the upload's cacheControl; the client turns it into ``max-age=<value>``, so it must be
# a number of seconds: 0 (never served from a cache without revalidation; downloads go through our API).
CACHE_SECONDS = "0"
BUCKET_CHECK_SECONDS = 300  # key and bucket are checked once per process, again after this
_bucket_checks: dict[tuple[str, str, str], tuple[float, dict]] = {}


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
        self.storage_url = str(client.storage_url).rstrip("/")
        self.auth_headers = {"apikey": key, "Authorization": f"Bearer {key}"}
        self.bucket = bucket
        self.key_role = _key_role(key)
        self.check_key = (self.storage_url, bucket, hashlib.sha256(key.encode()).hexdigest())
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
            return self._bucket_missing_error()
        if status == 413:
            limit = (self._bucket_checked() or {}).get("file_size_limit")
            return StorageError(
                f"Supabase Storage rechazó {what.removeprefix('subir ')} por su tamaño "
                f"({status}: {getattr(error, 'message', '')}): lo limita "
                + SIZE_HINT.format(bucket=self.bucket, bucket_limit=size_text(limit) if limit else "sin límite propio")
                + "."
            )
        if _is_transient(error):
            return StorageError(
                f"Supabase Storage no respondió al {what} tras {attempts} intentos "
                f"({status or type(error).__name__}). Inténtalo más tarde."
            )
        message = getattr(error, "message", "")
        detail = f" ({message})." if message else "."
        return StorageError(f"Error de Supabase Storage al {what}: {status or type(error).__name__}{detail}")

    def _bucket_missing_error(self) -> StorageError:
        return StorageError(
            f"El bucket {self.bucket!r} no existe en Supabase Storage: créalo (privado) o revisa "
            f"SUPABASE_BUCKET_NAME (y que SUPABASE_KEY sea la clave service_role de ese proyecto)."
        )

    def _raw(self, method: str, route: str, **kwargs):
        """One request to the storage API; an error answer raises the client's own error type."""
        response = self.http.request(method, f"{self.storage_url}/{route}", headers=self.auth_headers, **kwargs)
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _bucket_checked(self) -> dict | None:
        cached = _bucket_checks.get(self.check_key)
        return cached[1] if cached else None

    def _ready(self) -> dict:
        """Key and bucket, checked once per process (again after BUCKET_CHECK_SECONDS):
        a wrong key, a missing bucket and an anon key otherwise look alike (empty lists,
        404s, deletes that delete nothing)."""
        if self.key_role not in {"", "service_role"}:
            raise StorageError(
                f"SUPABASE_KEY es una clave {self.key_role!r}, no la service_role: con ella Supabase Storage "
                f"lista vacío y no borra nada: {AUTH_HINT.format(bucket=self.bucket)}."
            )
        cached = _bucket_checks.get(self.check_key)
        if cached and time.monotonic() - cached[0] < BUCKET_CHECK_SECONDS:
            return cached[1]
        route = f"bucket/{quote(self.bucket)}"
        info = self._call(f"consultar el bucket {self.bucket}", lambda: self._raw("GET", route).json())
        _bucket_checks[self.check_key] = (time.monotonic(), info)
        return info

    def bucket_public(self) -> bool:
        """Whether the bucket serves its objects to anyone (``/object/public/…``)."""
        return bool(self._ready().get("public"))

    def public_access_problem(self) -> str:
        if self.bucket_public():
            return (
                f"El bucket {self.bucket!r} de Supabase Storage es público: cualquiera puede leer sus objetos "
                "(los manifiestos están en claro). Hazlo privado en Storage → bucket → Edit bucket."
            )
        return ""

    # -- interface ------------------------------------------------------------

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        validate_object_path(path)
        folder, _, name = path.rpartition("/")
        temporary = f"{folder}/{temporary_name(name)}" if folder else temporary_name(name)
        descriptor, spool_path = tempfile.mkstemp(prefix="psico-backup-", dir=self.spool_dir)
        try:
            with os.fdopen(descriptor, "wb") as spool:
                yield spool
            problem = self.public_access_problem()
            if problem:
                raise StorageError(f"No se sube {path}: {problem}")
            size = os.path.getsize(spool_path)
            self._upload(spool_path, temporary, path)
            try:
                self._move(temporary, path, size=size)
            except BaseException:
                self._delete_quietly(temporary)
                raise
        finally:
            os.unlink(spool_path)

    def _upload(self, spool_path: str, temporary: str, path: str) -> None:
        # upsert: a retry after a lost response must not fail on its own first attempt.
        options = {"content-type": "application/octet-stream", "upsert": "true", "cache-control": CACHE_SECONDS}
        try:
            self._call(f"subir {path}", lambda: self.files.upload(temporary, spool_path, options))
        except BaseException:
            self._delete_quietly(temporary)
            raise

    def _move(self, source: str, destination: str, *, size: int) -> None:
        """Idempotent: a move whose reply was lost may have happened. Then the source is
        gone and the destination holds the expected size, and that is success."""
        try:
            self._call(f"mover {destination}", lambda: self.files.move(source, destination))
        except StorageError:
            try:
                moved = self._info(source) is None and (self._info(destination) or {}).get("size") == size
            except StorageError:
                moved = False
            if not moved:
                raise

    def _delete_quietly(self, path: str) -> None:
        try:
            self._remove(path)
        except StorageError:
            pass  # a hidden temporary; abandoned_writes_remove reclaims it later

    def _info(self, path: str) -> dict | None:
        """The object's info from the route that tells a bad key apart; None if there is none."""
        from storage3.exceptions import StorageApiError

        def info():
            try:
                return self._raw("GET", f"object/info/authenticated/{quote(self.bucket)}/{quote(path)}").json()
            except StorageApiError as error:
                if _status(error) == 404 and error.code == "not_found":
                    return None
                raise

        return self._call(f"consultar {path}", info)

    def _remove(self, path: str) -> None:
        """Delete and check: the server answers 200 with what it deleted, ``[]`` when it
        deleted nothing (no rights, no bucket); only an object already gone is success."""
        deleted = self._call(f"borrar {path}", lambda: self.files.remove([path]))
        if any(item.get("name") == path for item in deleted or []):
            return
        if self._info(path) is not None:
            raise StorageError(
                f"Supabase Storage no borró {path} (respondió sin borrar nada): {AUTH_HINT.format(bucket=self.bucket)}."
            )

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        validate_object_path(path)
        self._ready()
        url = f"{self.storage_url}/object/authenticated/{quote(self.bucket)}/{quote(path)}"

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
            if _status(error.__cause__) == 404 and getattr(error.__cause__, "code", "") == "not_found":
                raise StorageError(f"El objeto {path} no existe en {self.label}.") from None
            raise
        try:
            yield io.BufferedReader(_ResponseReader(response), buffer_size=CHUNK_SIZE)
        finally:
            response.close()

    def delete(self, path: str) -> None:
        validate_object_path(path)
        self._ready()
        self._remove(path)

    def exists(self, path: str) -> bool:
        validate_object_path(path)
        self._ready()
        return self._info(path) is not None

    def list(self, prefix: str) -> list[StoredObject]:
        folder = prefix.rstrip("/")
        if folder:
            validate_object_path(folder)
        self._ready()  # a missing bucket lists like an empty one
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

    def abandoned_writes(self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()) -> list[str]:
        folder = validate_object_path(prefix.rstrip("/"))
        self._ready()
        return [
            item.path
            for item in self._list_folder(folder, depth=8, temporaries=True)
            if final_path_of_temporary(item.path) in finished_paths
            or (item.modified is not None and item.modified < older_than)
        ]

    def abandoned_writes_remove(
        self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()
    ) -> int:
        stale = self.abandoned_writes(prefix, older_than=older_than, finished_paths=finished_paths)
        for path in stale:
            self._remove(path)
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


def _key_role(key: str) -> str:
    """The role a Supabase key claims, read without verifying it (the server verifies):
    a legacy JWT's ``role``; ``anon`` for a new publishable key; "" when unknown."""
    if key.startswith("sb_publishable_"):
        return "anon"
    parts = key.split(".")
    if len(parts) != 3:
        return ""
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return ""
    role = payload.get("role") if isinstance(payload, dict) else None
    return role if isinstance(role, str) else ""


def _is_transient(error: BaseException) -> bool:
    import httpx

    if isinstance(error, httpx.TransportError):
        return True  # timeouts, refused or dropped connections
    status = _status(error)
    return status >= 500 or status == 429
