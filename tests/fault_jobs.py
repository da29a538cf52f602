"""Background functions for the fault-injection tests; each records its runs.

The tests run workers in this process, so a run is recorded in memory: `runs`
counts the attempts that started per job id, which is how a test proves a job ran
once (or how often it ran). `gate(name)` holds a job until the test releases it.
"""

import threading
import time
from collections import Counter
from typing import Any

from django_redisjobs import background, current_job

_lock = threading.Lock()
runs: Counter[str] = Counter()
# Side effects of `charge`, keyed by idempotency key: what an external service
# that deduplicates by key would have done.
ledger: dict[str, int] = {}
_gates: dict[str, threading.Event] = {}
_ended: dict[str, threading.Event] = {}


def _event(table: dict[str, threading.Event], name: str) -> threading.Event:
    with _lock:
        return table.setdefault(name, threading.Event())


def gate(name: str) -> threading.Event:
    """Set it to let the job held on `name` end."""
    return _event(_gates, name)


def ended(name: str) -> threading.Event:
    """Set once the job held on `name` has returned (its outcome is the worker's)."""
    return _event(_ended, name)


def _record() -> str:
    job_id = current_job().id
    with _lock:
        runs[job_id] += 1
    return job_id


def release_all() -> None:
    with _lock:
        events = list(_gates.values())
    for event in events:
        event.set()


def reset() -> None:
    with _lock:
        runs.clear()
        ledger.clear()
        _gates.clear()
        _ended.clear()


@background(max_attempts=5)
def sleeper(seconds: float) -> str:
    """Run for `seconds`, like a long job holding its lease."""
    job_id = _record()
    time.sleep(seconds)
    return job_id


@background(max_attempts=5)
def held(name: str, timeout_s: float = 30.0) -> str:
    """Run until the test sets `gate(name)`; then sets `ended(name)`."""
    _record()
    released = gate(name).wait(timeout_s)
    ended(name).set()
    if not released:
        raise TimeoutError(f"gate {name!r} was not released within {timeout_s} s.")
    return name


@background(max_attempts=5)
def quick(value: int) -> int:
    _record()
    return value


@background(max_attempts=3)
def charge(account: str, amount: int) -> dict[str, Any]:
    """Charge once per job, however often it runs: the job id is the idempotency key.

    The first attempt charges, then fails as if the reply from the payment service
    was lost; the retry charges with the same key, which the service ignores.
    """
    job = current_job()
    _record()
    key = f"charge:{job.id}"
    with _lock:
        ledger.setdefault(key, amount)
    if job.attempt == 1:
        raise ConnectionError("payment service reply lost")
    return {"key": key, "attempt": job.attempt, "account": account}
