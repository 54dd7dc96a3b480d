"""An HTTP/1.1 forwarding proxy on loopback that misbehaves on request.

Placed between a storage backend and its server (moto, the fake Supabase), it
forwards every request unchanged (the Host header too, so S3 signatures stay
valid) and streams bodies both ways in small chunks. ``fail(kind, nth, times)``
makes the ``nth`` request from now on, and the ``times - 1`` after it, fail as:

- ``"500"``, ``"503"``, ``"429"``: that status, with a short body;
- ``"timeout"``: no answer until the client gives up (``hang_seconds``);
- ``"drop"``: the connection is closed without an answer.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 256 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, hang_seconds: float = 3.0):
        self.upstream = (upstream_host, upstream_port)
        self.hang_seconds = hang_seconds
        self.lock = threading.Lock()
        self.requests_seen = 0
        self.faults: dict[int, str] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, kind: str, *, nth: int = 1, times: int = 1) -> None:
        """Make requests nth … nth+times-1 (counted from now, 1-based) fail as ``kind``."""
        with self.lock:
            self.faults = {self.requests_seen + nth + offset: kind for offset in range(times)}

    def reset(self) -> None:
        with self.lock:
            self.faults = {}

    def next_fault(self) -> str | None:
        with self.lock:
            self.requests_seen += 1
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
            fault = proxy.next_fault()
            body = self._request_body()
            if fault == "drop":
                self._drop(body)
                return
            if fault == "timeout":
                for _ in body:
                    pass
                time.sleep(proxy.hang_seconds)
                self._drop(iter(()))
                return
            if fault is not None:
                for _ in body:
                    pass
                self._answer_error(int(fault))
                return
            self._forward(body)

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

        def _answer_error(self, status: int) -> None:
            payload = f"fallo inyectado {status}".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _forward(self, body) -> None:
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
                self._relay(response)
            finally:
                upstream.close()

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
