"""The remote storages' back-off, as the README states it: the first wait
``BACKUP_STORAGE_RETRY_BACKOFF_MS``, doubled after each failed attempt, jittered,
never more than 20 s; ``BACKUP_STORAGE_MAX_ATTEMPTS`` attempts in all."""

import pytest

from apps.backups.storage import retry_policy

SAMPLES = 400


@pytest.mark.parametrize(("base_ms", "attempts"), [(500, 5), (1500, 3)])
def test_waits_double_per_attempt_are_jittered_and_capped_at_20_seconds(settings, base_ms, attempts):
    settings.BACKUP_STORAGE_RETRY_BACKOFF_MS = base_ms
    settings.BACKUP_STORAGE_MAX_ATTEMPTS = attempts
    policy = retry_policy()
    assert policy.max_attempts == attempts
    for attempt in range(1, 10):
        nominal = min(20.0, base_ms / 1000 * 2 ** (attempt - 1))
        waits = [policy.delay(attempt) for _ in range(SAMPLES)]
        # Jitter takes off up to half, never adds: between nominal/2 and nominal.
        assert all(nominal / 2 <= wait <= nominal for wait in waits), (attempt, min(waits), max(waits))
        # And really varies (workers retrying together spread out); 400 draws all in one
        # tenth of the range would be a broken random source, not bad luck.
        assert max(waits) - min(waits) > nominal / 2 * 0.9, (attempt, min(waits), max(waits))
    assert max(policy.delay(30) for _ in range(SAMPLES)) <= 20.0


def test_a_stop_request_ends_a_retry_wait_at_once_without_another_attempt():
    """SIGTERM (or Ctrl-C) while a backup waits to retry its storage: the backup
    fails now as interrupted, instead of sleeping out the back-off (up to ~72 s)."""
    import os
    import signal
    import threading

    from apps.backups.errors import BackupInterruptedError, StorageError
    from apps.backups.interrupts import stop_on_signals
    from apps.backups.storage.retry import RetryPolicy, with_retries

    attempts = []

    def storage_down():
        attempts.append(1)
        raise ConnectionError("almacenamiento caído")

    # A wait of 2.5–5 s after the first attempt; the signal comes during it.
    policy = RetryPolicy(max_attempts=2, backoff_base=5)
    signal_sent = threading.Timer(0.5, os.kill, [os.getpid(), signal.SIGTERM])
    with stop_on_signals(), pytest.raises(BackupInterruptedError):
        signal_sent.start()
        with_retries(
            storage_down,
            policy=policy,
            is_transient=lambda error: True,
            describe=lambda error, count: StorageError(f"{count} intentos"),
            what="escribir",
        )
    signal_sent.join()
    assert attempts == [1]
