"""Bounded retries with exponential back-off for remote storage calls.

Both remote backends retry the same way, so the policy (how many attempts, how
long to wait) is one setting for both and is tested once: a transient failure
(5xx, 429, a timeout, a dropped connection) is retried up to
``BACKUP_STORAGE_MAX_ATTEMPTS`` times in all, waiting ``base * 2**n`` seconds
(with jitter, capped) between attempts; then the last error is turned into a
``StorageError`` by the caller's ``describe``. A stop request (SIGTERM, Ctrl-C
under ``stop_on_signals``) ends a wait at once with ``BackupInterruptedError``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from apps.backups.errors import BackupInterruptedError, StorageError
from apps.backups.interrupts import stop_wait

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_DELAY = 20.0


@dataclass(frozen=True)
class RetryPolicy:
    # 9 attempts from 0.5 s: 36–72 s of waiting in all, longer than a storage server's
    # restart (10–18 s measured for Supabase Storage), still bounded.
    max_attempts: int = 9
    backoff_base: float = 0.5

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (1-based): half jitter, capped."""
        return self._ceiling(attempt) * (0.5 + random.random() / 2)

    def _ceiling(self, attempt: int) -> float:
        return min(MAX_DELAY, self.backoff_base * 2 ** (attempt - 1))

    def total_wait(self) -> tuple[float, float]:
        """Least and most seconds spent waiting between the attempts of one call."""
        most = sum(self._ceiling(attempt) for attempt in range(1, self.max_attempts))
        return most / 2, most


def with_retries(
    operation: Callable[[], T],
    *,
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    describe: Callable[[BaseException, int], StorageError],
    what: str,
) -> T:
    """Run ``operation``; retry it while it fails transiently and attempts remain.

    ``describe(error, attempts)`` builds the ``StorageError`` raised at the end;
    errors that are not transient are described at once (a wrong key is not
    retried). ``what`` names the operation in the log (never a secret).
    """
    attempt = 1
    while True:
        try:
            return operation()
        except StorageError:
            raise
        except Exception as error:
            if not is_transient(error) or attempt >= policy.max_attempts:
                raise describe(error, attempt) from error
            wait = policy.delay(attempt)
            logger.warning(
                "Almacenamiento: %s falló (intento %s de %s: %s); reintento en %.1f s",
                what,
                attempt,
                policy.max_attempts,
                type(error).__name__,
                wait,
            )
            if stop_wait(wait):  # SIGTERM / Ctrl-C: the backup fails now, not after a minute of waits
                raise BackupInterruptedError from error
            attempt += 1


class RetryingCalls:
    """For remote backends: ``self._call(what, operation)`` runs one remote call
    under ``self.retry``. The backend says which errors are transient
    (``_is_transient``) and how a final error reads (``_describe``)."""

    retry: RetryPolicy

    def _is_transient(self, error: BaseException) -> bool:
        raise NotImplementedError

    def _describe(self, error: BaseException, attempts: int, what: str) -> StorageError:
        raise NotImplementedError

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        return with_retries(
            operation,
            policy=self.retry,
            is_transient=self._is_transient,
            describe=lambda error, attempts: self._describe(error, attempts, what),
            what=what,
        )
