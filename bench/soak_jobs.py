"""The soak run's background function: it records each execution in Redis."""

import os
import threading
import time

import redis

from django_redisjobs import background

_local = threading.local()


def runs_key(prefix: str) -> str:
    """Hash of job number -> executions started, outside the app's own keys."""
    return f"{prefix}:soak:runs"


def _client() -> redis.Redis:
    client: redis.Redis | None = getattr(_local, "client", None)
    if client is None:
        client = redis.Redis.from_url(os.environ["SOAK_REDIS_URL"])
        _local.client = client
    return client


@background
def soak_job(n: int, work_ms: int) -> None:
    """Count this execution of job `n`, then work for `work_ms`.

    Counting first means a worker killed during the work leaves a count of 1, and
    the run after recovery makes it 2: that is an execution more than once.
    """
    _client().hincrby(runs_key(os.environ.get("SOAK_PREFIX", "soak")), str(n), 1)
    time.sleep(work_ms / 1000)
