"""An HTTP/1.1 forwarding proxy on loopback that misbehaves on request.

Placed between a storage backend and its server (moto, the fake Supabase), it
forwards every request unchanged (the Host header too, so S3 signatures stay
valid) and streams bodies both ways in small chunks. ``fail(kind, nth, times)``
makes the ``nth`` request from now on, and the ``times - 1`` after it, fail as:

- ``"500"``, ``"503"``, ``"429"``: that status, with a short body (never forwarded);
- ``"timeout"``: no answer until the client gives up (``seconds``; never forwarded);
- ``"drop"``: the connection is closed without an answer (never forwarded);
- ``"lost-reply"``: the request IS forwarded and done by the server, then the
  connection is closed without relaying its answer (a reply lost on the way back);
- ``"late-reply"``: the request is forwarded and done, and its answer relayed only
  after ``seconds`` (past the client's timeout, that is a lost reply too; under it,
  a slow server).

Planned faults add up (``reset()`` clears them).
``reply(status, body, content_type, nth, times)`` answers the nth request with a
canned response instead (how a real service refuses something the test server
does not, e.g. Supabase's S3 ``EntityTooLarge``).

``s3_upload_times = True`` rewrites the ``Initiated`` time of listed multipart
uploads to when the proxy saw each one created (moto lists every upload as
initiated in 2010, which would make every open upload look abandoned).

``namespace_s3_errors = True`` rewrites S3 error replies the way Supabase's S3
endpoint sends them: ``<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/">``
(moto sends a bare ``<Error>``; botocore reads the code only from a bare one).

``s3_upload_limit = N`` refuses, as Supabase's S3 endpoint does under the project's
global upload limit, a ``PutObject`` over N bytes and the ``UploadPart`` with which a
multipart object passes N bytes in all: 413 ``EntityTooLarge`` (namespaced), never
forwarded (moto has no upload limit).
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 256 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_BARE_ERROR_ROOT = re.compile(rb"<Error>")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
_UPLOAD_BLOCK = re.compile(rb"<Upload>.*?</Upload>", re.DOTALL)
_INITIATED = re.compile(rb"<Initiated>[^<]*</Initiated>")


@dataclass(frozen=True)
class Fault:
    kind: str
    seconds: float = 0.0
    status: int = 0
    body: bytes = b""
    content_type: str = ""


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, hang_seconds: float = 3.0):
        self.upstream = (upstream_host, upstream_port)
        self.hang_seconds = hang_seconds
        self.namespace_s3_errors = False
        self.s3_upload_times = False
        self.s3_upload_limit: int | None = None
        self.s3_upload_sizes: dict[str, dict[str, int]] = {}  # UploadId → part number → bytes
        self.upload_started: dict[bytes, str] = {}  # UploadId → ISO time the proxy saw it created
        self.lock = threading.Lock()
        self.requests_seen = 0
        self.forwarded: list[str] = []  # "METHOD path" of every request the server received
        self.faults: dict[int, Fault] = {}
        self.matched_faults: list[tuple[str, Fault]] = []  # (method and path prefix, fault)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, kind: str, *, nth: int = 1, times: int = 1, seconds: float | None = None, on: str = "") -> None:
        """Make requests nth … nth+times-1 (counted from now, 1-based) fail as ``kind``;
        with ``on`` (e.g. ``"POST /storage/v1/object/move"``), the next ``times`` requests
        whose method and path start with it, whichever they are."""
        fault = Fault(kind, seconds=self.hang_seconds if seconds is None else seconds)
        if on:
            with self.lock:
                self.matched_faults += [(on, fault)] * times
            return
        self._plan(fault, nth, times)

    def reply(
        self, status: int, body: bytes, *, content_type: str = "application/xml", nth: int = 1, times: int = 1
    ) -> None:
        """Answer requests nth … nth+times-1 with this response, without forwarding them."""
        self._plan(Fault("reply", status=status, body=body, content_type=content_type), nth, times)

    def _plan(self, fault: Fault, nth: int, times: int) -> None:
        with self.lock:  # added to what is planned already (reset() clears)
            self.faults.update({self.requests_seen + nth + offset: fault for offset in range(times)})

    def reset(self) -> None:
        with self.lock:
            self.faults = {}
            self.matched_faults = []
            self.s3_upload_limit = None

    def next_fault(self, request_line: str = "") -> Fault | None:
        with self.lock:
            self.requests_seen += 1
            for index, (prefix, fault) in enumerate(self.matched_faults):
                if request_line.startswith(prefix):
                    del self.matched_faults[index]
                    return fault
            return self.faults.pop(self.requests_seen, None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler_for(proxy: FaultProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: tests print what matters
            pass

        def _any(self):
            fault = proxy.next_fault(f"{self.command} {self.path}")
            body = self._request_body()
            if fault is None and self._over_s3_upload_limit():
                fault = Fault(
                    "reply",
                    status=413,
                    body=s3_error_xml("EntityTooLarge", "The object exceeded the maximum allowed size"),
                    content_type="application/xml",
                )
            kind = fault.kind if fault else None
            if kind == "drop":
                self._drop(body)
            elif kind == "timeout":
                for _ in body:
                    pass
                time.sleep(fault.seconds)
                self._drop(iter(()))
            elif kind == "reply":
                for _ in body:
                    pass
                self._answer(fault.status, fault.body, fault.content_type)
            elif kind in {"500", "503", "429"}:
                for _ in body:
                    pass
                self._answer(int(kind), f"fallo inyectado {kind}".encode(), "text/plain")
            else:
                self._forward(body, fault)

        def _over_s3_upload_limit(self) -> bool:
            """A PutObject or UploadPart that takes its object past ``s3_upload_limit``."""
            if proxy.s3_upload_limit is None or self.command != "PUT":
                return False
            size = int(self.headers.get("x-amz-decoded-content-length") or self.headers.get("Content-Length") or 0)
            query = dict(part.partition("=")[::2] for part in self.path.partition("?")[2].split("&") if part)
            upload_id = query.get("uploadId")
            if upload_id:  # a part: the object so far, this part counted once however often it is sent
                with proxy.lock:
                    parts = proxy.s3_upload_sizes.setdefault(upload_id, {})
                    parts[query.get("partNumber", "")] = size
                    size = sum(parts.values())
            return size > proxy.s3_upload_limit

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any  # noqa: N815

        def _request_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return self._chunked_body()
            length = int(self.headers.get("Content-Length") or 0)
            return self._sized_body(length)

        def _sized_body(self, length: int):
            while length > 0:
                chunk = self.rfile.read(min(CHUNK, length))
                if not chunk:
                    return
                length -= len(chunk)
                yield chunk

        def _chunked_body(self):
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass
                    return
                yield from self._sized_body(size)
                self.rfile.readline()

        def _drop(self, body) -> None:
            for _ in body:
                pass
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _answer(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _forward(self, body, fault: Fault | None) -> None:
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=300)
            try:
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        upstream.putheader(name, value)
                if chunked:
                    upstream.putheader("Transfer-Encoding", "chunked")
                upstream.endheaders()
                for chunk in body:
                    upstream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    upstream.send(b"0\r\n\r\n")
                response = upstream.getresponse()
                with proxy.lock:
                    proxy.forwarded.append(f"{self.command} {self.path}")
                if fault is not None and fault.kind == "lost-reply":
                    response.read()  # the server has done its work; its answer never arrives
                    self._drop(iter(()))
                    return
                if fault is not None and fault.kind == "late-reply":
                    payload = response.read()
                    time.sleep(fault.seconds)
                    try:
                        self._relay_buffered(response, payload)
                    except OSError:
                        pass  # the client gave up waiting
                    return
                query = {part.partition("=")[0] for part in self.path.partition("?")[2].split("&")}
                if proxy.s3_upload_times and "uploads" in query and response.status == 200:
                    self._relay_buffered(response, self._upload_times(response.read()))
                    return
                if proxy.namespace_s3_errors and response.status >= 300:
                    self._relay_buffered(response, _namespaced(response.read()))
                    return
                self._relay(response)
            finally:
                upstream.close()

        def _upload_times(self, payload: bytes) -> bytes:
            if self.command == "POST":  # CreateMultipartUpload
                for upload_id in _UPLOAD_ID.findall(payload):
                    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                    proxy.upload_started[upload_id] = now
                return payload

            def real_time(block):
                found = _UPLOAD_ID.search(block.group(0))
                started = proxy.upload_started.get(found.group(1)) if found else None
                if started is None:
                    return block.group(0)
                return _INITIATED.sub(f"<Initiated>{started}</Initiated>".encode(), block.group(0))

            return _UPLOAD_BLOCK.sub(real_time, payload)  # ListMultipartUploads

        def _relay_buffered(self, response, payload: bytes) -> None:
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            no_body = self.command == "HEAD" or response.status in {204, 304}
            if not no_body:
                self.send_header("Content-Length", str(len(payload)))
            elif response.getheader("Content-Length") is not None:
                self.send_header("Content-Length", response.getheader("Content-Length"))
            self.end_headers()
            if not no_body:
                self.wfile.write(payload)

        def _relay(self, response) -> None:
            self.send_response_only(response.status, response.reason)
            length = response.getheader("Content-Length")
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            no_body = self.command == "HEAD" or response.status in {204, 304}
            if length is None and not no_body:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if no_body:
                return
            while chunk := response.read(CHUNK):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if length is None else chunk)
            if length is None:
                self.wfile.write(b"0\r\n\r\n")

    return Handler


def _namespaced(payload: bytes) -> bytes:
    """An S3 error document with the namespaced root Supabase's S3 endpoint sends."""
    return _BARE_ERROR_ROOT.sub(f'<Error xmlns="{S3_NAMESPACE}">'.encode(), payload, count=1)


def s3_error_xml(code: str, message: str, *, resource: str = "") -> bytes:
    """An error document as Supabase's S3 endpoint writes it (namespaced root)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error xmlns="{S3_NAMESPACE}"><Code>{code}</Code>'
        f"<Message>{message}</Message><Resource>{resource}</Resource></Error>"
    ).encode()
