"""Claiming a clinic's backup slot so that it is backed up once per slot.

A claim is a row of ``tenants_scheduledbackupclaim`` (public schema), unique
per (clinic, slot), taken with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``
statement: PostgreSQL locks the conflicting row and re-checks the ``WHERE`` on
its newest version, so of any number of workers racing for a slot exactly one
gets it. A slot is taken again only when its claim failed (and the clinic's
back-off has passed) or when its holder's lease ran out: a killed worker stops
renewing its lease, and another run takes over after ``BACKUP_SCHEDULE_LEASE_SECONDS``.
Lease times come from the database clock, the one clock all workers share.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.tenants.models import ScheduledBackupClaim

logger = logging.getLogger(__name__)

_CLAIM_SQL = """
INSERT INTO tenants_scheduledbackupclaim
    (clinic_id, slot, status, worker, claimed_at, lease_until, attempts, finished_at, error)
VALUES (%(clinic_id)s, %(slot)s, 'running', %(worker)s, now(), now() + make_interval(secs => %(lease)s), 1, NULL, '')
ON CONFLICT (clinic_id, slot) DO UPDATE
SET status = 'running', worker = EXCLUDED.worker, claimed_at = EXCLUDED.claimed_at,
    lease_until = EXCLUDED.lease_until, attempts = tenants_scheduledbackupclaim.attempts + 1,
    finished_at = NULL, error = ''
WHERE (tenants_scheduledbackupclaim.status = 'running' AND tenants_scheduledbackupclaim.lease_until < now())
   OR (tenants_scheduledbackupclaim.status = 'failed' AND NOT EXISTS (
        SELECT 1 FROM tenants_clinic c
        WHERE c.id = tenants_scheduledbackupclaim.clinic_id AND c.backup_retry_at > %(now)s))
RETURNING id
"""

_RENEW_SQL = """
UPDATE tenants_scheduledbackupclaim SET lease_until = now() + make_interval(secs => %(lease)s)
WHERE id = %(id)s AND worker = %(worker)s AND status = 'running'
"""


_TAKE_OVER_SQL = """
UPDATE tenants_scheduledbackupclaim
SET worker = %(worker)s, lease_until = now() + make_interval(secs => %(lease)s),
    attempts = attempts + CASE WHEN worker LIKE 'queued:%%' THEN 0 ELSE 1 END
WHERE id = %(id)s AND status = 'running' AND (worker LIKE 'queued:%%' OR lease_until < now())
RETURNING id
"""

QUEUED_PREFIX = "queued:"


def worker_name() -> str:
    """Who holds a claim: host, process and thread (several workers per process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:120]


def slot_claim(*, clinic_id: int, slot: str, now: datetime, worker: str, lease: int | None = None) -> int | None:
    """Take the slot for this worker; the claim's id, or None when another worker has or had it.
    ``lease``: seconds before another run may take it over (``BACKUP_SCHEDULE_LEASE_SECONDS``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "clinic_id": clinic_id,
                "slot": slot,
                "worker": worker,
                "lease": lease or settings.BACKUP_SCHEDULE_LEASE_SECONDS,
                "now": now,
            },
        )
        row = cursor.fetchone()
    return row[0] if row else None


def slot_take_over(*, claim_id: int, worker: str) -> bool:
    """A queue worker takes a slot the scheduler claimed and enqueued (``queued:…``
    holder), or one whose worker died (lease expired). False when the slot is
    done, or another live worker has it: a message delivered twice (a worker
    killed, the scheduler enqueueing again) runs the backup once."""
    with connection.cursor() as cursor:
        cursor.execute(
            _TAKE_OVER_SQL, {"id": claim_id, "worker": worker, "lease": settings.BACKUP_SCHEDULE_LEASE_SECONDS}
        )
        return cursor.fetchone() is not None


def slot_release(*, claim_id: int) -> None:
    """Give a claim back untouched (the clinic turned out not to be due after all)."""
    ScheduledBackupClaim.objects.filter(pk=claim_id).delete()


def slot_finish(*, claim_id: int, succeeded: bool, error: str = "") -> None:
    status = ScheduledBackupClaim.Status.SUCCEEDED if succeeded else ScheduledBackupClaim.Status.FAILED
    ScheduledBackupClaim.objects.filter(pk=claim_id).update(status=status, finished_at=timezone.now(), error=error)


class LeaseKeeper:
    """Renews a claim's lease in the background while its backup runs, so a
    long backup keeps its slot and a dead worker loses it soon after."""

    def __init__(self, *, claim_id: int, worker: str):
        self.claim_id, self.worker = claim_id, worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{claim_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        lease = settings.BACKUP_SCHEDULE_LEASE_SECONDS
        try:
            while not self._stop.wait(max(lease / 3, 1)):
                with connection.cursor() as cursor:
                    cursor.execute(_RENEW_SQL, {"lease": lease, "id": self.claim_id, "worker": self.worker})
                    if cursor.rowcount == 0:
                        logger.warning("El turno %s ya no pertenece a %s", self.claim_id, self.worker)
                        return
        finally:
            connection.close()  # this thread's own connection
