"""Retry policy: whether a failed attempt runs again, and after how long."""

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from .exceptions import Retry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a background function's failures are retried.

    Attempt n (1-based) that fails waits ``min(backoff_max, backoff_base * 2**(n-1))``,
    scaled by a random factor in [0.5, 1.0] when `jitter` is on so that jobs that
    failed together do not retry together. `no_retry_on` exceptions end the job at
    once; when `retry_on` is set, only those exceptions (and `Retry`) are retried.
    """

    max_attempts: int = 3
    backoff_base: timedelta = timedelta(seconds=2)
    backoff_max: timedelta = timedelta(hours=1)
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = ()
    no_retry_on: tuple[type[BaseException], ...] = ()

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Tell whether the attempt numbered `attempt` that raised `exc` runs again."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(exc, Retry):
            return True
        if self.no_retry_on and isinstance(exc, self.no_retry_on):
            return False
        if self.retry_on:
            return isinstance(exc, self.retry_on)
        return isinstance(exc, Exception)

    def delay_for(
        self,
        exc: BaseException,
        attempt: int,
        rand: Callable[[], float] = random.random,
    ) -> timedelta:
        """Return the wait before the next attempt after attempt `attempt` failed."""
        if isinstance(exc, Retry) and exc.delay is not None:
            return exc.delay
        exponent = min(max(attempt - 1, 0), 62)
        delay: timedelta = min(self.backoff_max, self.backoff_base * (2**exponent))
        if self.jitter:
            delay = delay * (0.5 + rand() / 2)
        return delay
