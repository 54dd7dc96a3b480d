"""A local Supabase Storage server: the REST endpoints the official client calls,
answering as the real server does (``../shared/facts/supabase-storage.md``).

Routes are served both under ``/storage/v1`` (what the client builds) and without
it (what the real server itself serves behind the hosted gateway):

- ``POST``/``PUT /object/<bucket>/<path>`` upload (multipart ``file`` and
  ``cacheControl`` fields, ``x-upsert``); ``GET /object/<bucket>/<path>`` and
  ``GET /object/authenticated/<bucket>/<path>`` download;
  ``GET /object/info[/authenticated]/<bucket>/<path>`` info;
  ``GET /object/public/<bucket>/<path>`` (public buckets only, no key needed);
  ``DELETE /object/<bucket>`` with ``{"prefixes": [...]}``;
  ``POST /object/list/<bucket>``; ``POST /object/move``; ``GET /bucket/<name>``;
  ``POST /object/sign/<bucket>/<path>`` plus the signed ``GET``.

How it answers (each point has a test in tests/backups/storage/test_fake_supabase.py):

- Errors are HTTP 400 (500 for a 500) with the real status as a *string* in the
  body: ``{"statusCode": "403", "error": ..., "message": ...}``.
- Keys are JWTs signed with the project's secret (``SERVICE_ROLE_KEY``,
  ``ANON_KEY``). A key with a bad signature is refused (``"403"``, "signature
  verification failed") by every route but ``GET /object/<bucket>/<path>`` and
  ``GET /object/info/<bucket>/<path>``, which treat it as anonymous.
- Only ``service_role`` bypasses row-level security. Anyone else on a private
  bucket: lists ``200 []``, reads and infos ``"404"`` Bucket not found, deletes
  ``200 []`` (nothing deleted), uploads ``"403"``, moves ``"404"``.
- A missing bucket lists as ``200 []`` and deletes as ``200 []``.
- Deletes answer with the objects actually deleted.
- Uploads over the bucket's ``file_size_limit`` or the project's standard upload
  limit (``upload_limit``) are ``"413"`` "The object exceeded the maximum allowed size".
- ``cacheControl`` is stored as ``max-age=<value>``, whatever the value.
- Names whose parts start with ``.`` are accepted everywhere.
- ``key_revoke(key)``: the project takes a key's rights away while a client still
  holds it (a test's "revoked/rotated key mid-process"); requests made with it are
  then answered as the anon key's are (lists and deletes ``200 []``, reads ``"404"``).
  The facts file records the anon key's answers, not a revoked key's: this stands
  in for "a key that has lost its rights", ``key_restore_all`` undoes it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

JWT_SECRET = "secreto-jwt-del-proyecto-de-prueba-0123456789"
SERVICE_ROLE_KEY = jwt.encode({"iss": "supabase", "role": "service_role"}, JWT_SECRET, algorithm="HS256")
ANON_KEY = jwt.encode({"iss": "supabase", "role": "anon"}, JWT_SECRET, algorithm="HS256")
# A service-role key of another project (signed with another secret).
FOREIGN_SERVICE_ROLE_KEY = jwt.encode(
    {"iss": "supabase", "role": "service_role"}, "otro-secreto-de-otro-proyecto-0123456789", algorithm="HS256"
)
FREE_PLAN_UPLOAD_LIMIT = 50 * 1024 * 1024
BAD_SIGNATURE = object()


def _error(status_code: str, error: str, message: str) -> Response:
    body = {"statusCode": status_code, "error": error, "message": message}
    http_status = 500 if status_code == "500" else 400
    return Response(json.dumps(body), status=http_status, content_type="application/json")


def _json(data, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _bucket_missing() -> Response:
    return _error("404", "Bucket not found", "Bucket not found")


def _object_missing() -> Response:
    return _error("404", "not_found", "Object not found")


class _TooLargeError(Exception):
    pass


@dataclass
class Bucket:
    name: str
    public: bool = False
    file_size_limit: int | None = None


# (endpoint, rule, methods, key required: a bad signature is refused rather than anonymous)
ROUTES = [
    ("bucket_get", "/bucket/<bucket>", ["GET"], True),
    ("list", "/object/list/<bucket>", ["POST"], True),
    ("move", "/object/move", ["POST"], True),
    ("info", "/object/info/authenticated/<bucket>/<path:key>", ["GET"], True),
    ("info", "/object/info/public/<bucket>/<path:key>", ["GET"], False),
    ("info", "/object/info/<bucket>/<path:key>", ["GET"], False),
    ("download", "/object/authenticated/<bucket>/<path:key>", ["GET"], True),
    ("public_get", "/object/public/<bucket>/<path:key>", ["GET"], False),
    ("sign", "/object/sign/<bucket>/<path:key>", ["POST"], True),
    ("signed_get", "/object/sign/<bucket>/<path:key>", ["GET"], False),
    ("remove", "/object/<bucket>", ["DELETE"], True),
    ("upload", "/object/<bucket>/<path:key>", ["POST", "PUT"], True),
    ("download", "/object/<bucket>/<path:key>", ["GET"], False),
]


class FakeSupabaseStorage:
    def __init__(self, root: Path, *, upload_limit: int = FREE_PLAN_UPLOAD_LIMIT):
        self.root = Path(root)
        self.upload_limit = upload_limit  # the project's UPLOAD_FILE_SIZE_LIMIT_STANDARD
        self.buckets: dict[str, Bucket] = {}
        self.signed: dict[str, tuple[str, str]] = {}
        self.revoked: set[str] = set()  # keys answered as the anon key from now on
        self.lock = threading.Lock()
        rules = []
        for index, (endpoint, rule, methods, _required) in enumerate(ROUTES):
            for prefix in ("/storage/v1", ""):
                rules.append(Rule(prefix + rule, endpoint=f"{endpoint}:{index}", methods=methods))
        self.urls = Map(rules)
        self.server = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self, port: int = 0) -> FakeSupabaseStorage:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise
        self.server = make_server("127.0.0.1", port, self.wsgi, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def restart(self, *, down_seconds: float, wait: bool = True) -> None:
        """Stop, stay down ``down_seconds`` (connections refused), come back on the same
        port, as the real server does on a deploy; ``restarted`` is set when it is back."""
        self.restarted = threading.Event()
        self.stop()

        def come_back():
            time.sleep(down_seconds)
            self.start(self.port)
            self.restarted.set()

        thread = threading.Thread(target=come_back, daemon=True)
        thread.start()
        if wait:
            thread.join()

    def bucket_create(self, name: str, *, public: bool = False, file_size_limit: int | None = None) -> None:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        self.buckets[name] = Bucket(name, public=public, file_size_limit=file_size_limit)

    def key_revoke(self, key: str) -> None:
        """Take the key's rights away: from now on it is answered as the anon key."""
        self.revoked.add(key)

    def key_restore_all(self) -> None:
        self.revoked.clear()

    def stored_keys(self, bucket: str) -> list[str]:
        """Every key in the bucket, hidden temporaries included."""
        base = self.root / bucket
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() and p.suffix != ".meta")

    def metadata(self, bucket: str, key: str) -> dict:
        return json.loads(self._meta_path(self._path(bucket, key)).read_text())

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
            return _error("404", "not_found", "Route not found")
        name, index = endpoint.split(":")
        required = ROUTES[int(index)][3]
        role = self._role(request)
        if role is BAD_SIGNATURE:
            if required:
                return _error("403", "Unauthorized", "signature verification failed")
            role = "anon"
        return getattr(self, f"_{name}")(request, role=role, **args)

    def _role(self, request: Request):
        """The key's role; a key that is not a JWT of this project is a bad signature."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token or token in self.revoked:
            return "anon"
        try:
            return jwt.decode(token, JWT_SECRET, algorithms=["HS256"]).get("role") or "anon"
        except jwt.PyJWTError:
            return BAD_SIGNATURE

    def _sees(self, role: str, bucket: str) -> bool:
        """Row-level security: without policies only service_role sees a private bucket's rows."""
        return bucket in self.buckets and (role == "service_role")

    def _path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if any(part in {"", ".", ".."} for part in parts):
            raise ValueError(key)
        return self.root / bucket / key

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(path.name + ".meta")

    def _entry(self, bucket: str, key: str, path: Path, *, name: str) -> dict:
        """An object as ``list`` (name relative to the folder) and ``remove`` (full name) show it."""
        stat = path.stat()
        when = datetime.fromtimestamp(stat.st_mtime, tz=UTC).isoformat().replace("+00:00", "Z")
        meta = json.loads(self._meta_path(path).read_text()) if self._meta_path(path).exists() else {}
        return {
            "name": name,
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{bucket}/{key}")),
            "bucket_id": bucket,
            "updated_at": when,
            "created_at": when,
            "last_accessed_at": when,
            "metadata": {
                "size": stat.st_size,
                "mimetype": meta.get("mimetype", "application/octet-stream"),
                "cacheControl": meta.get("cacheControl", "no-cache"),
            },
        }

    # -- endpoints --------------------------------------------------------------

    def _bucket_get(self, request: Request, *, role: str, bucket: str) -> Response:
        if not self._sees(role, bucket):
            return _bucket_missing()
        info = self.buckets[bucket]
        return _json(
            {
                "id": bucket,
                "name": bucket,
                "owner": "",
                "public": info.public,
                "file_size_limit": info.file_size_limit,
                "allowed_mime_types": None,
                "created_at": "2026-11-01T00:00:00Z",
                "updated_at": "2026-11-01T00:00:00Z",
            }
        )

    def _upload(self, request: Request, *, role: str, bucket: str, key: str) -> Response:  # noqa: PLR0911
        if bucket not in self.buckets:
            return _bucket_missing()
        if role != "service_role":
            return _error("403", "Unauthorized", "new row violates row-level security policy")
        final = self._path(bucket, key)
        upsert = request.method == "PUT" or request.headers.get("x-upsert", "").lower() == "true"
        if final.exists() and not upsert:
            return _error("409", "Duplicate", "The resource already exists")
        limits = [self.upload_limit, self.buckets[bucket].file_size_limit]
        limit = min(value for value in limits if value)
        declared = request.content_length
        if declared is not None and declared > limit + 64 * 1024:  # the form's own bytes aside
            while request.stream.read(1024 * 1024):  # drain, as a server does before answering
                pass
            return _too_large()
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".upload-{uuid.uuid4().hex}")
        try:
            upload = request.files.get("file")
            if upload is None:
                return _error("400", "InvalidRequest", "No file in the form")
            _copy_limited(upload.stream, partial, limit)
        except _TooLargeError:
            partial.unlink(missing_ok=True)
            return _too_large()
        cache_time = request.form.get("cacheControl")
        meta = {
            "cacheControl": f"max-age={cache_time}" if cache_time else "no-cache",
            "mimetype": upload.mimetype or "application/octet-stream",
        }
        with self.lock:
            os.replace(partial, final)
            self._meta_path(final).write_text(json.dumps(meta))
        return _json({"Key": f"{bucket}/{key}", "Id": str(uuid.uuid4())})

    def _download(self, request: Request, *, role: str, bucket: str, key: str) -> Response:
        if not self._sees(role, bucket):
            return _bucket_missing()
        path = self._path(bucket, key)
        if not path.is_file():
            return _object_missing()
        return self._file_response(request, path)

    def _public_get(self, request: Request, *, role: str, bucket: str, key: str) -> Response:
        info = self.buckets.get(bucket)
        if info is None or not info.public:
            return _bucket_missing()
        path = self._path(bucket, key)
        if not path.is_file():
            return _object_missing()
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

    def _info(self, request: Request, *, role: str, bucket: str, key: str) -> Response:
        info = self.buckets.get(bucket)
        if not self._sees(role, bucket) and not (info and info.public):
            return _bucket_missing()
        path = self._path(bucket, key)
        if not path.is_file():
            return _object_missing()
        entry = self._entry(bucket, key, path, name=key)
        return _json(
            {
                "id": entry["id"],
                "name": key,
                "version": entry["id"],
                "bucket_id": bucket,
                "size": entry["metadata"]["size"],
                "content_type": entry["metadata"]["mimetype"],
                "cache_control": entry["metadata"]["cacheControl"],
                "etag": f'"{entry["id"]}"',
                "metadata": None,
                "last_modified": entry["updated_at"],
                "created_at": entry["created_at"],
            }
        )

    def _remove(self, request: Request, *, role: str, bucket: str) -> Response:
        removed = []
        if not self._sees(role, bucket):
            return _json(removed)  # row-level security or no bucket: nothing deleted, still 200
        with self.lock:
            for key in (request.get_json(silent=True) or {}).get("prefixes", []):
                path = self._path(bucket, key)
                if path.is_file():
                    removed.append(self._entry(bucket, key, path, name=key))
                    path.unlink()
                    self._meta_path(path).unlink(missing_ok=True)
        return _json(removed)

    def _list(self, request: Request, *, role: str, bucket: str) -> Response:
        if not self._sees(role, bucket):
            return _json([])  # a missing bucket lists like an empty one
        body = request.get_json(silent=True) or {}
        prefix = (body.get("prefix") or "").strip("/")
        limit, offset = int(body.get("limit", 100)), int(body.get("offset", 0))
        folder = self.root / bucket / prefix if prefix else self.root / bucket
        entries = []
        for child in sorted(folder.iterdir()) if folder.is_dir() else []:
            if child.name.startswith(".upload-") or child.name.endswith(".meta"):
                continue  # an upload still being received is not an object yet
            if child.is_dir():
                entries.append(
                    {"name": child.name, "id": None, "updated_at": None, "created_at": None, "metadata": None}
                )
            else:
                key = f"{prefix}/{child.name}" if prefix else child.name
                entries.append(self._entry(bucket, key, child, name=child.name))
        return _json(entries[offset : offset + limit])

    def _move(self, request: Request, *, role: str) -> Response:
        body = request.get_json(silent=True) or {}
        bucket = body.get("bucketId")
        if bucket not in self.buckets:
            return _bucket_missing()
        source = self._path(bucket, body["sourceKey"])
        destination = self._path(bucket, body["destinationKey"])
        with self.lock:
            if not self._sees(role, bucket) or not source.is_file():
                return _object_missing()
            if destination.exists():
                return _error("409", "Duplicate", "The resource already exists")
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
            if self._meta_path(source).exists():
                os.replace(self._meta_path(source), self._meta_path(destination))
        return _json({"message": "Successfully moved"})

    def _sign(self, request: Request, *, role: str, bucket: str, key: str) -> Response:
        if not self._sees(role, bucket):
            return _bucket_missing()
        if not self._path(bucket, key).is_file():
            return _object_missing()
        token = secrets.token_urlsafe(16)
        self.signed[token] = (bucket, key)
        return _json({"signedURL": f"/object/sign/{bucket}/{key}?token={token}"})

    def _signed_get(self, request: Request, *, role: str, bucket: str, key: str) -> Response:
        if self.signed.get(request.args.get("token", "")) != (bucket, key):
            return _error("400", "InvalidSignature", "The signature is invalid")
        return self._file_response(request, self._path(bucket, key))


def _too_large() -> Response:
    return _error("413", "Payload too large", "The object exceeded the maximum allowed size")


def _copy_limited(source, target: Path, limit: int) -> None:
    written = 0
    with open(target, "wb") as stream:
        while chunk := source.read(1024 * 1024):
            written += len(chunk)
            if written > limit:
                raise _TooLargeError
            stream.write(chunk)
