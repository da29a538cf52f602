"""Background functions for the delayed, priority, unique and cancellation tests.

Jobs that must hold still while a test acts wait on module-level events that the
test sets: no job and no test sleeps a guessed time.
"""

import threading
import time
from datetime import timedelta
from typing import Any

from django_redisjobs import JobCancelled, background, current_job

#: Labels in the order jobs ran (tests run one worker thread when order matters).
ran: list[str] = []
#: Set by a job once it runs; the test then acts on it.
running = threading.Event()
#: Set by the test to let a waiting job go on.
go_on = threading.Event()

WAIT_S = 20.0


def reset() -> None:
    ran.clear()
    running.clear()
    go_on.clear()


def _wait_for_go_on() -> None:
    running.set()
    if not go_on.wait(WAIT_S):
        raise TimeoutError("The test never let the job go on.")


@background
def record(label: str) -> str:
    ran.append(label)
    return label


@background(queue="high")
def record_high(label: str) -> str:
    ran.append(label)
    return label


@background(queue="low")
def record_low(label: str) -> str:
    ran.append(label)
    return label


@background(priority=10)
def urgent(label: str) -> str:
    ran.append(label)
    return label


@background
def started_at() -> float:
    """The wall-clock second at which the job started."""
    return time.time()


@background
def blocks(label: str) -> str:
    """Run only when the test lets it: holds the worker's one thread meanwhile."""
    ran.append(label)
    _wait_for_go_on()
    return label


@background(max_attempts=3)
def honours_cancel() -> str:
    """Wait for the test, then end as cancelled if a cancel was requested."""
    _wait_for_go_on()
    if current_job().is_cancelled():
        raise JobCancelled("Stopped at the caller's request.")
    return "finished"


@background(max_attempts=3)
def ignores_cancel() -> str:
    _wait_for_go_on()
    return "finished anyway"


@background(max_attempts=3)
def fails_after_go_on() -> None:
    _wait_for_go_on()
    raise ConnectionError("upstream down")


@background
def cancels_itself() -> None:
    raise JobCancelled("Nothing left to do.")


@background(unique=True)
def refresh_feed(feed_id: int, full: bool = False) -> int:
    ran.append(f"feed {feed_id}")
    return feed_id


@background(unique_for=timedelta(hours=1))
def send_digest(user_id: int) -> int:
    ran.append(f"digest {user_id}")
    return user_id


@background
def plain(value: Any) -> Any:
    ran.append(f"plain {value}")
    return value
