"""A real HTTP server of the project, on loopback, over the test database.

The project's own WSGI application (every middleware, WhiteNoise included) in
Django's threaded development server, in a thread of the test process: it sees
the test database and the test's settings (its bucket folder). Each request
thread opens and closes its own database connection, as in production.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIRequestHandler

from django.core.servers.basehttp import ThreadedWSGIServer
from django.core.wsgi import get_wsgi_application


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class LiveServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._server = ThreadedWSGIServer((host, port), _QuietHandler, allow_reuse_address=False)
        self._server.set_app(get_wsgi_application())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=30)

    def url(self, domain: str, path: str = "/") -> str:
        return f"http://{domain}:{self.port}{path}"
