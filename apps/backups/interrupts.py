"""Stopping backups cleanly on SIGTERM (a deploy, Render ending a job, ``kill``)
and on Ctrl-C (SIGINT).

Python's default for SIGTERM is to die on the spot: a backup in progress would
stay ``running`` until it is stale (hours) and leave its temporary object
behind. Its default for SIGINT, ``KeyboardInterrupt``, is raised wherever the
main thread happens to be, and is lost when that is a finalizer or a weakref
callback ("Exception ignored in …"): the command then went on and waited for a
pg_dump that nothing ended. Under ``stop_on_signals()`` either signal instead
records a stop request and ends every child process the backups started, in
any thread, so each backup in progress fails through its normal path (record
``failed``, nothing stored) and ``stop_requested()`` tells the commands to
start no more. A second Ctrl-C raises ``KeyboardInterrupt`` as usual.

Children run in a process group of their own (``process_group=0``), and a stop
request ends the whole group, so a wrapper script's own children go with it;
``apps.backups.engine.children.child_process`` starts, registers and ends them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from apps.backups.errors import BackupInterruptedError

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_stop = threading.Event()
_stop_signal: list[str] = []  # the name of the signal that asked to stop, once one did
_children: set[subprocess.Popen] = set()
_callbacks: set[Callable[[], object]] = set()
_children_lock = threading.RLock()  # re-entrant: the handler may run while the main thread holds it


def stop_requested() -> bool:
    return _stop.is_set()


def stop_wait(seconds: float) -> bool:
    """Sleep ``seconds``, or less if a stop is requested meanwhile; True if one was."""
    return _stop.wait(seconds)


def stop_signal_name() -> str:
    """``SIGTERM`` or ``SIGINT``: what asked to stop (``SIGTERM`` when nothing did yet)."""
    return _stop_signal[0] if _stop_signal else "SIGTERM"


def process_group_signal(process: subprocess.Popen, signum: int) -> None:
    """``signum`` to the child's process group, unless the child was already reaped
    (its pid, and so its group id, may then belong to someone else)."""
    if process.returncode is None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass  # the whole group is gone


def child_register(process: subprocess.Popen) -> None:
    """Have a stop request end ``process`` (started with ``process_group=0``) and its group."""
    with _children_lock:
        _children.add(process)
    if _stop.is_set():  # the signal came between the check and the start
        process_group_signal(process, signal.SIGTERM)


def child_forget(process: subprocess.Popen) -> None:
    with _children_lock:
        _children.discard(process)


@contextmanager
def on_stop(callback: Callable[[], object]) -> Iterator[None]:
    """Run ``callback`` (on a thread of its own) if a stop is requested while the block
    runs: for waits that are not on a child, such as a query (``connection.cancel_safe``)
    that a lock held elsewhere keeps waiting. ``BackupInterruptedError`` instead of
    running the block once a stop was requested."""
    with _children_lock:
        _callbacks.add(callback)
    try:
        if _stop.is_set():
            raise BackupInterruptedError
        yield
    finally:
        with _children_lock:
            _callbacks.discard(callback)


def _callbacks_run(callbacks: list[Callable[[], object]]) -> None:
    def run() -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.warning("Al parar: %r falló", callback, exc_info=True)

    # Not in the handler itself: a cancel is a round trip to the server.
    threading.Thread(target=run, name="psicoadmin-stop", daemon=True).start()


def _on_stop_signal(signum, frame) -> None:
    if signum == signal.SIGINT and _stop.is_set():
        raise KeyboardInterrupt  # Ctrl-C again: do not wait for the clean stop
    if not _stop.is_set():
        _stop_signal.append(signal.Signals(signum).name)
    _stop.set()
    with _children_lock:
        children, callbacks = list(_children), list(_callbacks)
    for process in children:
        process_group_signal(process, signal.SIGTERM)
    if callbacks:
        _callbacks_run(callbacks)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """For the main thread of a command that makes backups: SIGTERM and Ctrl-C stop it cleanly."""
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop.clear()
        _stop_signal.clear()
