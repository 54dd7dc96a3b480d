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
