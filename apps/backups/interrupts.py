"""Stopping backups cleanly on SIGTERM (a deploy, Render ending a job, ``kill``).

Python's default for SIGTERM is to die on the spot: a backup in progress would
stay ``running`` until it is stale (hours) and leave its temporary object
behind. Under ``stop_on_sigterm()`` the signal instead ends the pg_dump
children, so every backup in progress, in any thread, fails through its normal
path (record ``failed``, nothing stored), and ``stop_requested()`` tells the
commands to start no more.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_stop = threading.Event()
_children: set[subprocess.Popen] = set()
_children_lock = threading.RLock()  # re-entrant: the handler may run while the main thread holds it


def stop_requested() -> bool:
    return _stop.is_set()


def child_register(process: subprocess.Popen) -> None:
    with _children_lock:
        _children.add(process)
    if _stop.is_set():  # the signal came between the check and the start
        process.terminate()


def child_forget(process: subprocess.Popen) -> None:
    with _children_lock:
        _children.discard(process)


def _on_sigterm(signum, frame) -> None:
    _stop.set()
    with _children_lock:
        children = list(_children)
    for process in children:
        process.terminate()


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """For the main thread of a command that makes backups."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop.clear()
