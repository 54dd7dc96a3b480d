"""The Celery application: long backup operations run as jobs on workers.

Broker and result store: ``CELERY_BROKER_URL`` (Render Key Value, any Redis), or
the project-local Redis (``config/embedded_redis.py``). Start a worker with
``celery -A config.celery worker`` (``make worker``; ``make serve`` starts one).

Delivery: ``acks_late`` (a message is acknowledged when its task ends, so a
worker killed mid-backup does not lose it) with a visibility timeout longer
than the longest operation (``BACKUP_JOB_VISIBILITY_TIMEOUT``: Redis hands an
unacknowledged message to another worker only after it), and
``reject_on_worker_lost`` (a pool child killed: delivered again at once).
A second delivery is safe: scheduled backups hold a claim with a lease
(``apps.backups.scheduling.claims``), and jobs record their own state.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("psicoadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _configure() -> None:
    from django.conf import settings

    visibility = {"visibility_timeout": settings.BACKUP_JOB_VISIBILITY_TIMEOUT}
    # Workers look for messages whose worker died every BACKUP_JOB_RESTORE_INTERVAL
    # seconds (one indexed Redis query), not kombu's default of ~100 s.
    transport = {
        **visibility,
        "unacked_restore_interval": settings.BACKUP_JOB_RESTORE_INTERVAL,
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a long task never holds other messages behind it
        broker_transport_options=transport,
        result_backend_transport_options=visibility,
        result_expires=7 * 24 * 3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # Celery beat instead of a cron: `celery -A config.celery beat` enqueues the
        # scheduler every minute (README: "Jobs"). Exactly once per slot holds either way.
        beat_schedule={
            "run-scheduled-backups": {"task": "backups.scheduled_backups_enqueue", "schedule": 60.0},
        },
        include=["apps.backups.jobs.tasks"],
    )


_configure()


@worker_init.connect
def _refuse_transaction_pooler(**kwargs) -> None:
    """A worker behind a transaction-mode pooler (one clinic could see another's data)
    does not start, like the web server (``config/wsgi.py``): no job is taken and
    then lost at its first query (``apps/tenants/pooler.py``, tenants.E001)."""
    from django.core.exceptions import ImproperlyConfigured

    from apps.tenants.pooler import refuse_transaction_pooler

    try:
        refuse_transaction_pooler()
    except ImproperlyConfigured as error:
        # Celery logs and ignores a receiver's Exception; SystemExit stops the worker.
        raise SystemExit(f"ImproperlyConfigured: {error}") from None
