"""A real PgBouncer (Debian's ``pgbouncer``) in front of the test database.

Neon's pooled endpoint is PgBouncer in transaction mode: session state (``SET``,
session advisory locks, temporary tables) does not survive from one transaction
to the next there. Tests that must hold behind such a pooler start one with
:func:`pgbouncer_running` and point clients at the port it yields.

PgBouncer refuses to run as root, so as root it runs as the embedded
PostgreSQL's system user (created on first use).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config.embedded_postgres import server_user


@dataclass(frozen=True)
class PgBouncer:
    host: str
    port: int
    log: Path

    def url(self, *, user: str, dbname: str, password: str = "") -> str:
        credentials = f"{user}:{password}" if password else user
        return f"postgres://{credentials}@{self.host}:{self.port}/{dbname}"


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("pgbouncer is missing: run scripts/ensure-system-tools (Debian package pgbouncer)")
    return found


@contextmanager
def pgbouncer_running(
    *, server_host: str, server_port: int, user: str, pool_mode: str = "transaction", pool_size: int = 2
) -> Iterator[PgBouncer]:
    """Start PgBouncer on a free loopback port in front of ``server_host:server_port``.

    Clients authenticate to PgBouncer with ``trust``; PgBouncer connects to the
    server as the client's user without a password (the test servers trust
    loopback)."""
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    log = folder / "pgbouncer.log"
    run_as = server_user()  # PgBouncer, like PostgreSQL, refuses to run as root
    for attempt in range(5):
        port = _free_port()
        (folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server_host} port={server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {folder / 'users.txt'}\n"
            f"pool_mode = {pool_mode}\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {log}\n"
        )
        if run_as:
            entry = pwd.getpwnam(run_as)
            for path in folder.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        process = subprocess.Popen(
            [pgbouncer_binary(), str(folder / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd="/",
            **({"user": run_as, "group": pwd.getpwnam(run_as).pw_gid, "extra_groups": []} if run_as else {}),
        )
        if _wait_listening(port, process):
            break
        process.kill()
        process.wait()
        if attempt == 4:
            detail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            raise RuntimeError(f"pgbouncer did not start: {detail}")
    try:
        yield PgBouncer(host="127.0.0.1", port=port, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
