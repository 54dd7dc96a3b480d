"""Real Celery worker processes for the job tests (the broker is the project-local
Redis: the ``redis_url`` and ``broker`` fixtures of ``tests/conftest.py``).

``WorkerProcess`` is ``celery -A config.celery worker --pool solo``: one process
that runs one task at a time in itself, so ``kill -9`` of it is the death of
the worker in the middle of its task. Workers get the test database and
bucket through ``subprocess_env``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from django.conf import settings


def broker_idle(url: str) -> bool:
    """No message waiting in the default queue and none delivered but unacknowledged."""
    client = redis.Redis.from_url(url)
    return client.llen("celery") == 0 and client.hlen("unacked") == 0


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen
    log: Path
    _log_handle: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # cold shutdown: do not wait for a task
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_handle is not None:
            self._log_handle.close()


def worker_command(name: str) -> list[str]:
    """A solo-pool worker named ``name``, quiet on the cluster (no gossip, mingle or
    heartbeat: each test or benchmark worker stands alone). Also used by ``bench/``."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config.celery",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def worker_start(*, name: str, env: dict[str, str], folder: Path, timeout: float = 90) -> WorkerProcess:
    """Start a solo-pool worker and wait until it consumes from the queue."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"worker-{name}.log"
    handle = open(log, "w")
    process = subprocess.Popen(
        worker_command(name),
        cwd=settings.BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    worker = WorkerProcess(name=name, process=process, log=log, _log_handle=handle)
    deadline = time.monotonic() + timeout
    while " ready." not in worker.output():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"worker {name} did not start:\n{worker.output()[-3000:]}")
        time.sleep(0.1)
    return worker


@contextmanager
def workers_running(count: int, *, env: dict[str, str], folder: Path, prefix: str = "w") -> Iterator[list]:
    workers = []
    try:
        for index in range(count):
            workers.append(worker_start(name=f"{prefix}{index + 1}", env=env, folder=folder))
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def wait_until(condition, *, timeout: float = 120, interval: float = 0.1, message: str = "timed out") -> None:
    """Poll ``condition`` (a generous time-out only against hanging forever; never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(interval)


@contextmanager
def celery_app_using(url: str) -> Iterator[None]:
    """Point this process's Celery app (broker and result store) at ``url`` for a test.

    The app reads its configuration once, from the settings of the first test
    that used it; tests that change the broker settings must repoint it."""
    from config.celery import app

    before = {key: app.conf[key] for key in ("broker_url", "result_backend")}

    def repoint(values: dict) -> None:
        app.conf.update(**values)
        app._backend_cache = None  # the result store client, created from the old URL
        app._local.__dict__.pop("backend", None)

    repoint({"broker_url": url, "result_backend": url})
    try:
        yield
    finally:
        repoint(before)
