"""Progress of a command's long work: a rich bar on a terminal, plain lines in logs.

``command_progress(command, description)`` yields the progress callable the
services take (``apps.backups.engine.progress``). On a terminal it draws a
``rich`` bar (phase, bytes of the total when known, speed, time); otherwise
(cron, a log file) it writes a plain line at each phase and at most one every
``PLAIN_EVERY`` seconds, so logs stay short and readable.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from apps.backups.engine.progress import Progress
from apps.backups.jobs.progress import PHASE_LABELS

PLAIN_EVERY = 5.0
PHASES = PHASE_LABELS


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def _is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", None)) and stream.isatty()


@contextmanager
def command_progress(command, description: str) -> Iterator[Progress]:
    stream = command.stdout._out  # the real stream behind Django's OutputWrapper
    if _is_terminal(stream):
        with _rich_progress(stream, description) as progress:
            yield progress
    else:
        yield _plain_progress(command, description)


@contextmanager
def _rich_progress(stream, description: str) -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("{task.description}"),
        TextColumn("[bold]{task.fields[phase]}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
    )
    with bar:
        task = bar.add_task(description, total=None, phase="")

        def update(phase: str | None = None, *, bytes_done=None, bytes_total=None, **_rows) -> None:
            changes = {}
            if phase:
                changes["phase"] = PHASES.get(phase, phase)
            if bytes_done is not None:
                changes["completed"] = bytes_done
            if bytes_total is not None:
                changes["total"] = bytes_total
            bar.update(task, **changes)

        yield update


def _plain_progress(command, description: str) -> Progress:
    state = {"phase": "", "done": 0, "total": None, "last": 0.0}

    def update(phase: str | None = None, *, bytes_done=None, bytes_total=None, **_rows) -> None:
        phase_changed = bool(phase) and phase != state["phase"]
        if phase:
            state["phase"] = phase
        if bytes_done is not None:
            state["done"] = bytes_done
        if bytes_total is not None:
            state["total"] = bytes_total
        now = time.monotonic()
        if not phase_changed and now - state["last"] < PLAIN_EVERY:
            return
        state["last"] = now
        done, total = state["done"], state["total"]
        amount = f"{_mb(done)} de {_mb(total)} ({done * 100 // total} %)" if total else _mb(done)
        command.stdout.write(f"   … {description}: {PHASES.get(state['phase'], state['phase'])}, {amount}")

    return update
