"""A local Supabase Storage server: the REST endpoints the official client calls.

Implements, under ``/storage/v1`` and as the ``storage3`` client sends them:
upload (``POST``/``PUT /object/<bucket>/<path>``, multipart ``file`` field,
``x-upsert``), download (``GET /object/<bucket>/<path>``), info
(``GET /object/info/<bucket>/<path>``, used by ``exists``), remove
(``DELETE /object/<bucket>`` with ``{"prefixes": [...]}``), list
(``POST /object/list/<bucket>``, one folder level with ``limit``/``offset``),
move (``POST /object/move``) and sign (``POST /object/sign/<bucket>/<path>``
plus the signed ``GET``). Errors have Supabase's JSON shape
(``statusCode``/``error``/``message``). Every request must carry the
service-role key as ``apikey`` and ``Authorization: Bearer``: a missing key is
401, a wrong one 403. Objects are files under a folder, uploads stream to disk.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

SERVICE_ROLE_KEY = "service-role-key-de-prueba"


def _error(http_status: int, status_code: str, error: str, message: str) -> Response:
    body = {"statusCode": status_code, "error": error, "message": message}
    return Response(json.dumps(body), status=http_status, content_type="application/json")


def _json(data, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


class FakeSupabaseStorage:
    def __init__(self, root: Path, *, key: str = SERVICE_ROLE_KEY):
        self.root = Path(root)
        self.key = key
        self.buckets: set[str] = set()
        self.signed: dict[str, tuple[str, str]] = {}
        self.lock = threading.Lock()
        self.urls = Map(
            [
                Rule("/storage/v1/object/list/<bucket>", endpoint="list", methods=["POST"]),
                Rule("/storage/v1/object/move", endpoint="move", methods=["POST"]),
                Rule("/storage/v1/object/info/<bucket>/<path:key>", endpoint="info", methods=["GET"]),
                Rule("/storage/v1/object/sign/<bucket>/<path:key>", endpoint="sign", methods=["POST"]),
                Rule("/storage/v1/object/sign/<bucket>/<path:key>", endpoint="signed_get", methods=["GET"]),
                Rule("/storage/v1/object/<bucket>", endpoint="remove", methods=["DELETE"]),
                Rule("/storage/v1/object/<bucket>/<path:key>", endpoint="upload", methods=["POST", "PUT"]),
                Rule("/storage/v1/object/<bucket>/<path:key>", endpoint="download", methods=["GET"]),
            ]
        )
        self.server = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> FakeSupabaseStorage:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def bucket_create(self, name: str) -> None:
        """A private bucket (there is no public endpoint here at all)."""
        (self.root / name).mkdir(parents=True, exist_ok=True)
        self.buckets.add(name)

    def stored_keys(self, bucket: str) -> list[str]:
        """Every key in the bucket, hidden temporaries included."""
        base = self.root / bucket
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    # -- WSGI -------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = self.urls.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except Exception:
            return _error(404, "404", "not_found", "Route not found")
        if endpoint != "signed_get":
            denied = self._check_key(request)
            if denied:
                return denied
        bucket = args.get("bucket") or (request.get_json(silent=True) or {}).get("bucketId")
        if bucket not in self.buckets:
            return _error(404, "404", "Bucket not found", "Bucket not found")
        return getattr(self, f"_{endpoint}")(request, **args)

    def _check_key(self, request: Request) -> Response | None:
        apikey = request.headers.get("apikey")
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not apikey and not bearer:
            return _error(401, "401", "Unauthorized", "No API key found in request")
        if not (secrets.compare_digest(apikey or "", self.key) and secrets.compare_digest(bearer, self.key)):
            return _error(403, "403", "Unauthorized", "invalid signature")
        return None

    def _path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if any(part in {"", ".", ".."} for part in parts):
            raise ValueError(key)
        return self.root / bucket / key

    def _info_of(self, bucket: str, key: str, path: Path) -> dict:
        stat = path.stat()
        when = datetime.fromtimestamp(stat.st_mtime, tz=UTC).isoformat().replace("+00:00", "Z")
        return {
            "name": key.rsplit("/", 1)[-1],
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{bucket}/{key}")),
            "bucket_id": bucket,
            "updated_at": when,
            "created_at": when,
            "last_accessed_at": when,
            "metadata": {"size": stat.st_size, "mimetype": "application/octet-stream", "cacheControl": "no-store"},
        }

    # -- endpoints --------------------------------------------------------------

    def _upload(self, request: Request, bucket: str, key: str) -> Response:
        final = self._path(bucket, key)
        upsert = request.method == "PUT" or request.headers.get("x-upsert", "").lower() == "true"
        if final.exists() and not upsert:
            return _error(400, "409", "Duplicate", "The resource already exists")
        upload = request.files.get("file")
        if upload is None:
            return _error(400, "400", "InvalidRequest", "No file in the form")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".upload-{uuid.uuid4().hex}")
        with open(partial, "wb") as target:
            shutil.copyfileobj(upload.stream, target, 1024 * 1024)
        os.replace(partial, final)
        return _json({"Key": f"{bucket}/{key}", "Id": str(uuid.uuid4())})

    def _download(self, request: Request, bucket: str, key: str) -> Response:
        path = self._path(bucket, key)
        if not path.is_file():
            return _error(400, "404", "not_found", "Object not found")
        return self._file_response(request, path)

    def _file_response(self, request: Request, path: Path) -> Response:
        stream = open(path, "rb")  # closed by the WSGI server when the response is done
        response = Response(
            wrap_file(request.environ, stream, 1024 * 1024),
            content_type="application/octet-stream",
            direct_passthrough=True,
        )
        response.content_length = path.stat().st_size
        return response

    def _info(self, request: Request, bucket: str, key: str) -> Response:
        path = self._path(bucket, key)
        if not path.is_file():
            return _error(404, "404", "not_found", "Object not found")
        return _json(self._info_of(bucket, key, path))

    def _remove(self, request: Request, bucket: str) -> Response:
        removed = []
        for key in (request.get_json(silent=True) or {}).get("prefixes", []):
            path = self._path(bucket, key)
            if path.is_file():
                removed.append(self._info_of(bucket, key, path))
                path.unlink()
        return _json(removed)

    def _list(self, request: Request, bucket: str) -> Response:
        body = request.get_json(silent=True) or {}
        prefix = (body.get("prefix") or "").strip("/")
        limit, offset = int(body.get("limit", 100)), int(body.get("offset", 0))
        folder = self.root / bucket / prefix if prefix else self.root / bucket
        entries = []
        for child in sorted(folder.iterdir()) if folder.is_dir() else []:
            if child.name.startswith(".upload-"):
                continue  # an upload still being received is not an object yet
            if child.is_dir():
                entries.append(
                    {"name": child.name, "id": None, "updated_at": None, "created_at": None, "metadata": None}
                )
            else:
                key = f"{prefix}/{child.name}" if prefix else child.name
                entries.append(self._info_of(bucket, key, child))
        return _json(entries[offset : offset + limit])

    def _move(self, request: Request, bucket: str | None = None) -> Response:
        body = request.get_json(silent=True) or {}
        source = self._path(body["bucketId"], body["sourceKey"])
        destination = self._path(body["bucketId"], body["destinationKey"])
        with self.lock:
            if not source.is_file():
                return _error(400, "404", "not_found", "Object not found")
            if destination.exists():
                return _error(400, "409", "Duplicate", "The resource already exists")
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
        return _json({"message": "Successfully moved"})

    def _sign(self, request: Request, bucket: str, key: str) -> Response:
        if not self._path(bucket, key).is_file():
            return _error(400, "404", "not_found", "Object not found")
        token = secrets.token_urlsafe(16)
        self.signed[token] = (bucket, key)
        return _json({"signedURL": f"/object/sign/{bucket}/{key}?token={token}"})

    def _signed_get(self, request: Request, bucket: str, key: str) -> Response:
        if self.signed.get(request.args.get("token", "")) != (bucket, key):
            return _error(400, "403", "InvalidSignature", "The signature is invalid")
        return self._file_response(request, self._path(bucket, key))
