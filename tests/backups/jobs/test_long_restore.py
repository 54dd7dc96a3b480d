"""A restore longer than the web server's time-out finishes as a job.

The web server is the production one (gunicorn, as render.yaml runs it) with a
5 s worker time-out; the restore runs on a real Celery worker whose psql reads
the dump slowly (a link or a disk slower than the clinic is large), so it lasts
longer than that time-out. Before jobs, gunicorn killed such a request.
"""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from apps.backups.engine.pg_clients import find_client, server_major
from apps.backups.services import backup_create
from tests.backups.restore.test_swap import change_clinic_data
from tests.conftest import PASSWORD
from tests.support.celery_workers import wait_until, workers_running
from tests.support.database import table_hashes

WEB_TIMEOUT = 5
SLOW_PSQL = """#!{python}
# psql that reads its input slowly, then takes at least {minimum} s in all.
import subprocess, sys, time
if sys.argv[1:] == ["--version"]:
    sys.exit(subprocess.run(["{real}", "--version"]).returncode)
started = time.monotonic()
psql = subprocess.Popen(["{real}", *sys.argv[1:]], stdin=subprocess.PIPE)
while chunk := sys.stdin.buffer.read(4096):
    psql.stdin.write(chunk)
    time.sleep(0.1)
time.sleep(max(0.0, {minimum} - (time.monotonic() - started)))
psql.stdin.close()
sys.exit(psql.wait())
"""


def slow_psql_folder(folder: Path) -> Path:
    from django.db import connection

    folder.mkdir(parents=True)
    real_psql = find_client("psql", min_major=server_major(connection)).path
    script = folder / "psql"
    script.write_text(SLOW_PSQL.format(python=sys.executable, real=real_psql, minimum=WEB_TIMEOUT + 3))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    real_pg_dump = find_client("pg_dump", min_major=server_major(connection)).path
    (folder / "pg_dump").symlink_to(real_pg_dump)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn_start(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            str(WEB_TIMEOUT),
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            httpx.get(f"{base}/api/schema/", timeout=1)
            return True
        except httpx.HTTPError:
            return False

    wait_until(answering, timeout=60)
    return process, base


def test_api_restore_longer_than_the_web_timeout_finishes_as_a_job_with_rising_progress(
    committed, worker_env, tmp_path
):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    before = table_hashes("alfa")
    change_clinic_data("alfa")
    env = worker_env | {"BACKUP_PG_BIN_DIR": str(slow_psql_folder(tmp_path / "bin"))}
    web, base = gunicorn_start(env, tmp_path / "gunicorn.log")
    host = {"Host": alfa.domain}

    def login() -> dict:
        response = httpx.post(
            f"{base}/api/auth/token/", json={"email": alfa.admin.email, "password": PASSWORD}, headers=host
        )
        assert response.status_code == 200, response.text
        return host | {"Authorization": f"Bearer {response.json()['access']}"}

    try:
        with workers_running(1, env=env, folder=tmp_path / "workers"):
            headers = login()
            response = httpx.post(f"{base}/api/backups/restore/", json={"backup_id": record.pk}, headers=headers)
            assert response.status_code == 202, response.text
            location = urlsplit(response.headers["Location"])
            assert location.netloc == alfa.domain
            assert location.path == f"/api/backups/jobs/{response.json()['job']['id']}/"
            location = f"{base}{location.path}"  # *.localhost does not resolve here: Host header instead
            seen, session = [], {"headers": headers, "ended": False}

            def finished() -> bool:
                reply = httpx.get(location, headers=session["headers"])
                if reply.status_code == 401 and not session["ended"]:
                    # The restore ended every session issued before it, ours too: log in again.
                    session.update(headers=login(), ended=True)
                    return False
                assert reply.status_code == 200, reply.text
                seen.append(reply.json())
                return reply.json()["status"] in ("succeeded", "failed")

            wait_until(finished, timeout=180, interval=0.2)
            job = seen[-1]
            assert session["ended"]
    finally:
        web.terminate()
        web.wait(timeout=30)

    assert (job["status"], job["error"]) == ("succeeded", ""), job
    assert job["restore_info"]["status"] == "succeeded"
    assert job["restore_info"]["backup_id"] == record.pk
    assert job["restore_info"]["previous_schema"].startswith("alfa_prev_")
    after = table_hashes("alfa")
    # Logging in (again, after the restore) sets users' last_login: users are compared by
    # count. It also records the new session's refresh token (issue 17's revocable tokens).
    assert (_rows(after, "users_user"), _rows(after, "token_blacklist_outstandingtoken")) == (
        _rows(before, "users_user"),
        _rows(before, "token_blacklist_outstandingtoken") + 1,
    )
    assert after == before
    # Longer than the web server would have allowed a request.
    started, ended = (time.strptime(job[key][:19], "%Y-%m-%dT%H:%M:%S") for key in ("started_at", "finished_at"))
    assert time.mktime(ended) - time.mktime(started) > WEB_TIMEOUT
    assert "WORKER TIMEOUT" not in (tmp_path / "gunicorn.log").read_text()
    # Progress rose through the replay, to the end, against the backup's totals.
    done = [item["bytes_done"] for item in seen if item["status"] == "running"]
    assert done == sorted(done)
    assert len({value for value in done if 0 < value < record.file_size}) >= 2, done
    assert all(item["bytes_total"] == record.file_size for item in seen if item["status"] == "running")
    assert job["bytes_done"] == job["bytes_total"] == record.file_size
    assert job["rows_done"] == job["rows_total"] > 0
    assert job["phase"] == "done" and job["percent"] == 100.0


def _rows(hashes: dict, table: str) -> int:
    """The row count of ``table`` in ``table_hashes`` ("count:digest"), taken out of it."""
    return int(hashes.pop(table).split(":")[0])
