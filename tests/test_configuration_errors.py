"""Set-up mistakes end in one clear line, not a traceback."""

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def assert_one_clear_line(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0]


def test_malformed_database_url():
    result = run_manage("showmigrations", DATABASE_URL="not a url")
    assert_one_clear_line(result, "DATABASE_URL no es válida")


def test_database_url_of_another_engine():
    result = run_manage("showmigrations", DATABASE_URL="mysql://user@localhost/db")
    assert_one_clear_line(result, "DATABASE_URL debe apuntar a PostgreSQL")


def test_unreachable_database():
    # Bound but not listening, and held while the command runs: connecting is refused,
    # and no other process can start listening on the port in between.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        result = run_manage("showmigrations", DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/nada")
    assert_one_clear_line(result, "No se puede conectar a la base de datos", "Connection refused")


def test_embedded_port_already_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_manage("check", PSICO_DATA_DIR=str(tmp_path), EMBEDDED_PG_PORT=str(port))
    assert_one_clear_line(result, f"El puerto {port}", "EMBEDDED_PG_PORT")
    assert not (tmp_path / "postgres" / "PG_VERSION").exists()
