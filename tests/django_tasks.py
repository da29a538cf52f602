"""django.tasks functions for the backend tests (Django 6.0+ only).

Only the backend test modules import this, after skipping on older Django. The
tasks use the "default" alias of ``TASKS`` in tests/settings.py, our backend, so
importing the module registers them with the worker, as a project's tasks module
does.
"""

import asyncio
import os
import threading
import time
from typing import Any

from django.tasks import TaskContext, task

#: What the tasks saw, for the tests to read: labels in run order, threads,
#: contexts.
ran: list[Any] = []


def reset() -> None:
    ran.clear()


@task()
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task()
async def noop_async(*args: Any, **kwargs: Any) -> None:
    return None


@task()
def meaning_of_life() -> int:
    return 42


@task()
def echo(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs]


@task()
def returns_tuple_and_bytes() -> Any:
    return (1, b"two", {"three": (3,)})


@task()
def returns_object() -> Any:
    return object()


@task()
def record(label: str) -> str:
    ran.append(label)
    return label


@task()
async def where_async(label: str) -> str:
    await asyncio.sleep(0)
    ran.append((label, threading.current_thread().name))
    return label


@task()
def fails(message: str) -> None:
    raise ValueError(message)


@task()
def exits() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task()
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task(takes_context=True)
def task_id(context: TaskContext) -> str:
    return context.task_result.id


@task(takes_context=True)
def context_seen(context: TaskContext, label: str) -> list[Any]:
    result = context.task_result
    seen = [
        label,
        context.attempt,
        result.status,
        list(result.worker_ids),
        result.started_at is not None,
        result.last_attempted_at is not None,
    ]
    ran.append(seen)
    return seen


@task(takes_context=True)
def flaky(context: TaskContext, fail_times: int) -> int:
    """Fails its first `fail_times` attempts with ConnectionError."""
    if context.attempt <= fail_times:
        raise ConnectionError(f"attempt {context.attempt} failed")
    return context.attempt


@task(takes_context=True)
async def flaky_async(context: TaskContext, fail_times: int) -> int:
    if context.attempt <= fail_times:
        raise ConnectionError(f"attempt {context.attempt} failed")
    return context.attempt


#: Set by `blocks` once it runs; the test sets `release` to let it end.
started = threading.Event()
release = threading.Event()


@task()
def blocks() -> str:
    started.set()
    if not release.wait(20):
        raise TimeoutError("The test never released the task.")
    return "released"


@task()
def sleeps(seconds: float) -> None:
    # Short sleeps: the worker's timeout is raised between bytecodes.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


@task(takes_context=True)
def touch_when_released(context: TaskContext, out: str, release: str) -> int:
    """Waits (in whatever process runs it) for the file `release`, then writes its
    attempt and process id to `out`."""
    deadline = time.monotonic() + 20
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError("The test never released the task.")
        time.sleep(0.01)
    with open(out, "w") as file:
        file.write(f"{context.attempt} {os.getpid()}\n")
    return context.attempt
