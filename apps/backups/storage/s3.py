"""Backups in any S3-compatible bucket (AWS S3, Supabase's S3 endpoint, MinIO, R2).

Writes stream as a multipart upload: one part (``BACKUP_S3_PART_SIZE_MB``) is
buffered at a time, so memory stays bounded whatever the object's size. S3 shows
a multipart object only once the upload is completed, which happens on a clean
exit of ``open_write``; on any exception the upload is aborted, so nothing ever
appears under the final name. Small objects (under one part) are one
``PutObject``. Objects are private: no ACL is ever sent, so they take the
bucket's (private) default.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO

from django.core.exceptions import ImproperlyConfigured

from apps.backups.errors import StorageError
from apps.backups.storage.base import BackupStorage, StoredObject, validate_object_path
from apps.backups.storage.retry import RetryingCalls, RetryPolicy

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
_AUTH_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_REGION_ERRORS = {"AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "PermanentRedirect"}
_TOO_LARGE = {"EntityTooLarge", "413"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "RequestTimeout"}


class S3BackupStorage(RetryingCalls, BackupStorage):
    label = "S3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: str = "",
        addressing_style: str = "auto",
        prefix: str = "",
        part_size: int = 8 * 1024 * 1024,
        timeout: float = 60,
        retry: RetryPolicy | None = None,
    ):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ImproperlyConfigured(
                "BACKUP_STORAGE_BACKEND=s3 necesita boto3: pip install -r requirements.txt (o pip install boto3)."
            ) from None
        if not bucket:
            raise ImproperlyConfigured("BACKUP_STORAGE_BACKEND=s3 necesita BACKUP_S3_BUCKET (el nombre del bucket).")
        if addressing_style not in {"auto", "path", "virtual"}:
            raise ImproperlyConfigured(
                f"BACKUP_S3_ADDRESSING_STYLE={addressing_style!r} no es válido: usa auto, path o virtual."
            )
        if bool(access_key_id) != bool(secret_access_key):
            raise ImproperlyConfigured(
                "Configura a la vez BACKUP_S3_ACCESS_KEY_ID y BACKUP_S3_SECRET_ACCESS_KEY (o ninguna, para usar "
                "las credenciales estándar de AWS del entorno)."
            )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region or None,
        )
        if session.get_credentials() is None:
            raise ImproperlyConfigured(
                "BACKUP_STORAGE_BACKEND=s3 no tiene credenciales: define BACKUP_S3_ACCESS_KEY_ID y "
                "BACKUP_S3_SECRET_ACCESS_KEY (o las variables AWS_* estándar)."
            )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            connect_timeout=timeout,
            read_timeout=timeout,
            # Retries are ours (retry.py), one policy for every remote backend.
            retries={"total_max_attempts": 1, "mode": "standard"},
            # Only send/verify checksums when the operation requires them: some
            # S3-compatible services (R2, older MinIO) reject the new defaults.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client = session.client("s3", endpoint_url=endpoint_url or None, config=config)
        self.bucket = bucket
        self.region = region
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = max(MIN_PART_SIZE, part_size)
        self.retry = retry or RetryPolicy()

    # -- plumbing -----------------------------------------------------------

    def _key(self, path: str) -> str:
        return self.prefix + validate_object_path(path)

    def _is_transient(self, error: BaseException) -> bool:
        return _is_transient(error)

    def _describe(self, error: BaseException, attempts: int, what: str) -> StorageError:
        code, status = _error_code(error), _status(error)
        if code in _REGION_ERRORS:
            return StorageError(
                f"S3 rechazó la petición al {what} ({code}): BACKUP_S3_REGION={self.region!r} no es la región "
                f"del bucket {self.bucket!r}: {_error_message(error)}"
            )
        if code in _AUTH_ERRORS or status in {401, 403}:
            return StorageError(
                f"S3 rechazó las credenciales al {what} ({code or status}): revisa BACKUP_S3_ACCESS_KEY_ID / "
                f"BACKUP_S3_SECRET_ACCESS_KEY, que la clave tenga permiso sobre el bucket {self.bucket!r} y "
                f"BACKUP_S3_REGION (ahora {self.region!r}: una región equivocada también invalida la firma)."
            )
        if code == "NoSuchBucket":
            return StorageError(f"El bucket {self.bucket!r} no existe en S3 (BACKUP_S3_BUCKET).")
        if code in _TOO_LARGE:
            return StorageError(
                f"S3 rechazó {what.removeprefix('subir ').split(' (')[0]} por su tamaño ({code}: "
                f"{_error_message(error)}). En el endpoint S3 de Supabase el límite de subida del proyecto "
                "(50 MB en el plan gratuito) se aplica también a cada parte y manda sobre el del bucket: solo un "
                "plan de pago con el límite elevado (Storage → Settings) permite subirlo."
            )
        if _is_transient(error):
            return StorageError(
                f"S3 no respondió al {what} tras {attempts} intentos ({code or type(error).__name__}). "
                "Inténtalo más tarde."
            )
        return StorageError(f"Error de S3 al {what}: {code or type(error).__name__}.")

    def public_access_problem(self) -> str:
        """Read where the service lets us (bucket policy status, public-access block, ACL)."""
        from botocore.exceptions import BotoCoreError, ClientError

        problems = []
        try:
            status = self.client.get_bucket_policy_status(Bucket=self.bucket)
            if status.get("PolicyStatus", {}).get("IsPublic"):
                problems.append("su política lo hace público")
        except (ClientError, BotoCoreError):
            pass  # no policy, or the service does not say
        try:
            acl = self.client.get_bucket_acl(Bucket=self.bucket)
            if any(
                grant.get("Grantee", {}).get("URI", "").endswith(("/global/AllUsers", "/global/AuthenticatedUsers"))
                for grant in acl.get("Grants", [])
            ):
                problems.append("su ACL lo abre a todos")
        except (ClientError, BotoCoreError):
            pass
        if not problems:
            return ""
        return (
            f"El bucket S3 {self.bucket!r} es público ({', '.join(problems)}): los manifiestos están en claro. "
            "Bloquea el acceso público (Block Public Access) y quita esa política o ACL."
        )

    # -- interface ------------------------------------------------------------

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        writer = _MultipartWriter(self, self._key(path), path)
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.abort()
            raise

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        key = self._key(path)
        try:
            response = self._call(f"leer {path}", lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        except StorageError as error:
            if _error_code(error.__cause__) in _MISSING:
                raise StorageError(f"El objeto {path} no existe en {self.label}.") from None
            raise
        body = response["Body"]
        try:
            yield io.BufferedReader(_BodyReader(body, self), buffer_size=1024 * 1024)
        finally:
            body.close()

    def delete(self, path: str) -> None:
        key = self._key(path)
        self._call(f"borrar {path}", lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    def exists(self, path: str) -> bool:
        key = self._key(path)
        try:
            self._call(f"consultar {path}", lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except StorageError as error:
            if _error_code(error.__cause__) in _MISSING:
                return False
            raise
        return True

    def list(self, prefix: str) -> list[StoredObject]:
        folder = prefix.rstrip("/")
        full_prefix = self.prefix + (validate_object_path(folder) + "/" if folder else "")
        objects: list[StoredObject] = []
        token: str | None = None
        for _page in range(100_000):  # bounded: 1000 keys a page
            kwargs = {"Bucket": self.bucket, "Prefix": full_prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"listar {prefix}", lambda kwargs=kwargs: self.client.list_objects_v2(**kwargs))
            for item in page.get("Contents", []):
                objects.append(
                    StoredObject(
                        path=item["Key"][len(self.prefix) :], size=item["Size"], modified=item.get("LastModified")
                    )
                )
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        return sorted(objects, key=lambda stored: stored.path)

    def _open_uploads(self, prefix: str, older_than: datetime, finished_paths: Collection[str]) -> list[dict]:
        full_prefix = self.prefix + validate_object_path(prefix.rstrip("/")) + "/"
        page = self._call(
            f"listar subidas incompletas de {prefix}",
            lambda: self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=full_prefix),
        )
        return [
            upload
            for upload in page.get("Uploads", [])
            if upload["Key"][len(self.prefix) :] in finished_paths or upload["Initiated"] < older_than
        ]

    def abandoned_writes(self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()) -> list[str]:
        return [
            f"{upload['Key'][len(self.prefix) :]} (subida multiparte abierta)"
            for upload in self._open_uploads(prefix, older_than, finished_paths)
        ]

    def abandoned_writes_remove(
        self, prefix: str, *, older_than: datetime, finished_paths: Collection[str] = ()
    ) -> int:
        """Abort multipart uploads a dead process left open (they cost storage, never show)."""
        uploads = self._open_uploads(prefix, older_than, finished_paths)
        for upload in uploads:
            self._abort(upload["Key"], upload["UploadId"])
        return len(uploads)

    def _abort(self, key: str, upload_id: str) -> None:
        self._call(
            "cancelar la subida",
            lambda: self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id),
        )


class _MultipartWriter(io.RawIOBase):
    """Buffers one part; uploads parts as they fill; completes on ``finish``."""

    def __init__(self, storage: S3BackupStorage, key: str, path: str):
        self.storage, self.key, self.path = storage, key, path
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []
        self.size = 0  # bytes sent in parts

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) >= self.storage.part_size:
            part = bytes(self.buffer[: self.storage.part_size])
            del self.buffer[: self.storage.part_size]
            self._upload_part(part)
        return len(data)

    def _upload_part(self, data: bytes) -> None:
        storage, number = self.storage, len(self.parts) + 1
        if self.upload_id is None:
            created = storage._call(
                f"iniciar la subida de {self.path}",
                lambda: storage.client.create_multipart_upload(Bucket=storage.bucket, Key=self.key),
            )
            self.upload_id = created["UploadId"]
        response = storage._call(
            f"subir {self.path} (parte {number})",
            lambda: storage.client.upload_part(
                Bucket=storage.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
            ),
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.size += len(data)

    def finish(self) -> None:
        storage = self.storage
        if self.upload_id is None:
            data = bytes(self.buffer)
            storage._call(
                f"subir {self.path}",
                lambda: storage.client.put_object(Bucket=storage.bucket, Key=self.key, Body=data),
            )
            return
        if self.buffer or not self.parts:
            self._upload_part(bytes(self.buffer))
        self.buffer = bytearray()
        upload = {"Parts": self.parts}
        try:
            storage._call(
                f"completar la subida de {self.path}",
                lambda: storage.client.complete_multipart_upload(
                    Bucket=storage.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload=upload
                ),
            )
        except StorageError as error:
            # A retried completion whose first attempt landed (answer lost) finds no upload:
            # success if the object is there with the size and multipart ETag we sent.
            if _error_code(error.__cause__) != "NoSuchUpload" or not self._completed():
                raise
        self.upload_id = None

    def _completed(self) -> bool:
        storage = self.storage
        try:
            head = storage._call("consultar", lambda: storage.client.head_object(Bucket=storage.bucket, Key=self.key))
        except StorageError:
            return False
        if head.get("ContentLength") != self.size:
            return False
        etag = str(head.get("ETag", "")).strip('"')
        expected = _multipart_etag([part["ETag"] for part in self.parts])
        # Services that do not use S3's multipart ETag (an opaque one) are judged by size alone.
        return etag == expected or not re.fullmatch(r"[0-9a-f]{32}-\d+", etag)

    def abort(self) -> None:
        self.buffer = bytearray()
        if self.upload_id is not None:
            try:
                self.storage._abort(self.key, self.upload_id)
            except StorageError:
                pass  # an open upload is invisible; abandoned_writes_remove reclaims it later
            self.upload_id = None


class _BodyReader(io.RawIOBase):
    """The object's bytes as a raw stream; a read that fails mid-way is a StorageError."""

    def __init__(self, body, storage: S3BackupStorage):
        self.body, self.storage = body, storage

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.body.read(len(buffer))
        except Exception as error:
            raise StorageError(f"Se perdió la conexión con S3 durante la lectura: {type(error).__name__}.") from None
        buffer[: len(data)] = data
        return len(data)


def _error_code(error: BaseException | None) -> str:
    """The S3 error code. Where the error document's root is namespaced (Supabase's S3
    endpoint: ``<Error xmlns=…>``) botocore leaves ``Error.Code`` empty and puts the
    code at the top level of the parsed response."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code") or response.get("Code") or "")


def _error_message(error: BaseException | None) -> str:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Message") or response.get("Message") or "")


def _multipart_etag(part_etags: list[str]) -> str:
    """S3's ETag of a completed multipart object: MD5 of the parts' MD5s, dash, part count."""
    digests = b"".join(bytes.fromhex(etag.strip('"')) for etag in part_etags if _is_md5(etag))
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(part_etags)}"


def _is_md5(etag: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{32}", etag.strip('"')) is not None


def _status(error: BaseException | None) -> int:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def _is_transient(error: BaseException) -> bool:
    from botocore.exceptions import ConnectionError, HTTPClientError

    if isinstance(error, ConnectionError | HTTPClientError):
        return True  # timeouts, refused or dropped connections
    status = _status(error)
    return status >= 500 or status == 429 or _error_code(error) in _THROTTLED
