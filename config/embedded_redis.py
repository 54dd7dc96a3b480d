"""A project-local Redis, the Celery broker when ``CELERY_BROKER_URL`` is not set.

Like the embedded PostgreSQL (``config/embedded_postgres.py``): Debian's
``redis-server`` (``system-packages.txt``) is started on demand, on 127.0.0.1
only, with its data and log in a git-ignored folder (``.data/redis/``), on its
own port (``EMBEDDED_REDIS_PORT``, default 56379, never the machine's 6379). It
outlives the command that started it so that later commands reuse it;
``python -m config.embedded_redis stop`` (``make db-stop``) stops it.

It persists with an append-only file, so queued jobs survive a restart of the
server. It is started lazily: by the worker (``make worker``/``make serve``),
and by the web or cron process the first time it enqueues a job; commands
that never enqueue never start it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from config.env import ConfigurationError, env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 56379


def configured_location() -> tuple[Path, int]:
    """Data folder and port of the embedded Redis, from the environment."""
    data_root = Path(env_str("PSICO_DATA_DIR") or BASE_DIR / ".data")
    return data_root / "redis", env_int("EMBEDDED_REDIS_PORT", DEFAULT_PORT)


def broker_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", 1) else "")
    if not found:
        raise ConfigurationError(
            "Falta redis-server (broker de Celery embebido): ejecuta scripts/ensure-system-tools "
            "(paquete Debian redis-server) o define CELERY_BROKER_URL."
        )
    return found


def ensure_running(data_dir: Path, port: int) -> str:
    """Start the server if it is not running; return its broker URL."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(data_dir.parent / "redis.lock"):
        if _running_pid(data_dir) is not None and _answers(port):
            return broker_url(port)
        if _answers(port):
            raise ConfigurationError(
                f"El puerto {port} de 127.0.0.1 ya está en uso por otro proceso. Define EMBEDDED_REDIS_PORT "
                "con un puerto libre, o CELERY_BROKER_URL."
            )
        _start(data_dir, port)
        return broker_url(port)


def stop(data_dir: Path) -> bool:
    """Stop the server if it runs (it saves its data first); return whether it was running."""
    data_dir = data_dir.resolve()
    pid = _running_pid(data_dir)
    if pid is None:
        return False
    os.kill(pid, 15)  # redis-server saves and exits on SIGTERM
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, 9)
    return True


def _start(data_dir: Path, port: int) -> None:
    log = data_dir / "redis.log"
    subprocess.run(
        [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--protected-mode",
            "yes",
            "--dir",
            str(data_dir),
            "--daemonize",
            "yes",
            "--pidfile",
            str(data_dir / "redis.pid"),
            "--logfile",
            str(log),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        cwd=str(data_dir),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _answers(port):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    raise ConfigurationError(f"Redis embebido no arrancó en el puerto {port}: {' | '.join(tail)}")


def _answers(port: int) -> bool:
    """Whether a Redis answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _running_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not a running server.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


@contextmanager
def _exclusive_lock(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _main(argv: list[str]) -> int:
    data_dir, port = configured_location()
    command = argv[1] if len(argv) > 1 else "status"
    if command == "stop":
        print("Redis detenido." if stop(data_dir) else "Redis no estaba en marcha.")
    elif command == "start":
        print(f"Redis embebido en {ensure_running(data_dir, port)}")
    else:
        pid = _running_pid(data_dir.resolve())
        print(f"En marcha en {broker_url(port)}" if pid else "Detenido.")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
