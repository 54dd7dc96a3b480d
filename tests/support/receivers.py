"""Real servers on loopback that receive what the application sends: an SMTP
server (aiosmtpd) and an HTTP server for webhooks."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Inbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


class SmtpServer:
    """``with SmtpServer() as smtp:`` a real SMTP server; ``smtp.messages`` holds what arrived.
    With ``accounts`` ({user: password}) it requires AUTH (LOGIN or PLAIN, without TLS on
    loopback) and refuses mail from a client that has not logged in; ``smtp.logins`` holds
    the accepted logins."""

    def __init__(self, accounts: dict[str, str] | None = None):
        self.inbox = _Inbox()
        self.port = free_port()
        auth = {}
        if accounts is not None:

            def authenticate(server, session, envelope, mechanism, auth_data):
                user, password = auth_data.login.decode(), auth_data.password.decode()
                if accounts.get(user) != password:
                    return AuthResult(success=False, handled=False)
                self.inbox.logins.append((user, password))
                return AuthResult(success=True)

            auth = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **auth)

    @property
    def logins(self):
        return self.inbox.logins

    @property
    def messages(self):
        return self.inbox.messages

    @property
    def envelopes(self):
        return self.inbox.envelopes

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


class WebhookReceiver:
    """``with WebhookReceiver() as hook:`` an HTTP server; ``hook.posts`` holds the JSON bodies posted."""

    def __init__(self, status: int = 200):
        self.posts: list[dict] = []
        self.headers: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.headers.append(dict(self.headers))
                receiver.posts.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/secreto"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
