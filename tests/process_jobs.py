"""Background functions that misbehave, for the process-mode (supervisor) tests.

`runworker --processes` subprocesses import this module through
``AUTODISCOVER_MODULES`` (see tests/test_supervisor.py).
"""

import os
import resource
import time
from datetime import timedelta

from django_redisjobs import JobTimeout, background

_MB = 1024 * 1024


@background(timeout=timedelta(milliseconds=500), max_attempts=2)
def blocks_past_timeout(seconds: float) -> str:
    """Sleep in C, where the thread-mode timeout cannot reach: only a kill stops it."""
    time.sleep(seconds)
    return "woke"


@background(
    timeout=timedelta(seconds=1),
    max_attempts=3,
    backoff_base=timedelta(minutes=10),
    backoff_max=timedelta(minutes=10),
    jitter=False,
)
def waits_with_own_backoff() -> None:
    """Claimed, never run, by the recovery tests: a timeout retried after exactly
    10 minutes, which no default gives."""
    time.sleep(60)


@background(timeout=timedelta(seconds=1), max_attempts=3, no_retry_on=(JobTimeout,))
def waits_never_retried_on_timeout() -> None:
    """Claimed, never run, by the recovery tests: attempts left, but a timeout
    ends it."""
    time.sleep(60)


@background(max_attempts=2)
def exits_process(code: int) -> None:
    """Leave the worker process at once, as a segfault or a native crash would."""
    os._exit(code)


@background(max_attempts=1)
def allocates_past_limit(limit_mb: int) -> None:
    """Allocate until a small address-space limit of this process makes it fail.

    The limit (current size + `limit_mb`) keeps the test harmless for the machine;
    it is lifted again before the job ends, so the worker process goes on.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + limit_mb * _MB, hard))
    chunks: list[bytes] = []
    try:
        while True:
            chunks.append(b"\x01" * (8 * _MB))
    finally:
        chunks.clear()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@background(max_attempts=1)
def allocates_until_killed(step_mb: int, cap_mb: int) -> int:
    """Grow resident memory step by step, then wait: the test plays the OOM killer.

    `cap_mb` bounds what it takes should nobody kill it.
    """
    chunks: list[bytes] = []
    while len(chunks) * step_mb < cap_mb:
        chunks.append(b"\x01" * (step_mb * _MB))  # written, so resident
        time.sleep(0.005)
    time.sleep(60)
    return len(chunks)


def _vm_size() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()
