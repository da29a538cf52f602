"""Background functions used by the tests (module level, as the worker requires)."""

import asyncio
import os
import threading
import time
from datetime import timedelta
from typing import Any

from django_redisjobs import Retry, background, current_job

calls: list[tuple[str, Any]] = []
gate = threading.Event()


@background
def add(a: int, b: int) -> int:
    return a + b


@background(queue="other")
def echo(value: Any) -> Any:
    return value


@background(max_attempts=3)
def always_fails(message: str) -> None:
    raise ConnectionError(message)


@background(max_attempts=5)
def fails_then_succeeds(times: int) -> int:
    attempt = current_job().attempt
    if attempt <= times:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@background(max_attempts=5, no_retry_on=(ValueError,))
def rejects(value: int) -> int:
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


@background(max_attempts=2)
def asks_for_retry(delay_s: float) -> None:
    raise Retry(delay=timedelta(seconds=delay_s), reason="not yet")


@background
def returns_unserialisable() -> object:
    return object()


@background
def context_info() -> dict[str, Any]:
    job = current_job()
    job.set_progress(0.5)
    return {"id": job.id, "attempt": job.attempt, "queue": job.queue}


@background
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@background(timeout=timedelta(milliseconds=200), max_attempts=1)
def sleeps(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "woke"


@background(timeout=timedelta(milliseconds=100), max_attempts=1)
async def async_sleeps(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


@background
def touch_file(path: str, seconds: float = 0.0) -> int:
    """Sleep, then append a line to `path`: lets subprocess tests see a job's run."""
    time.sleep(seconds)
    with open(path, "a") as handle:
        handle.write(f"{current_job().id} {os.getpid()}\n")
    return os.getpid()


@background
def touch_file_when_released(path: str, release: str, timeout_s: float = 30.0) -> int:
    """Create `<release>.started`, wait until the file `release` exists, then
    append like `touch_file`.

    Holds a job running for exactly as long as a subprocess test needs: the test
    creates `release` when the job may end, instead of guessing a sleep. Status
    `active` only says the job was claimed (it may still wait for a thread); the
    `.started` file says its code runs.
    """
    with open(f"{release}.started", "w"):
        pass
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release!r} did not appear within {timeout_s} s.")
        time.sleep(0.01)
    with open(path, "a") as handle:
        handle.write(f"{current_job().id} {os.getpid()}\n")
    return os.getpid()


@background(max_attempts=2)
def exits_process(code: int) -> None:
    raise SystemExit(code)


@background(max_attempts=1)
def reports_progress(steps: int) -> str:
    job = current_job()
    for step in range(1, steps + 1):
        job.set_progress(step / steps, f"step {step} of {steps}")
    return "done"


@background(max_attempts=1)
def fails_until_file_exists(path: str) -> str:
    """Fails until `path` exists: a dead job that a retry can bring through."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not there yet")
    return "found it"


@background(max_attempts=1)
def half_then_waits(timeout_s: float = 20.0) -> str:
    """Reports half its progress, then waits for `gate` before it finishes."""
    current_job().set_progress(0.5, "half way")
    gate.wait(timeout_s)
    return "finished"
