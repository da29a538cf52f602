"""The one rule every thread of a worker runs under, and the worker's stop signal.

A worker's threads each run a loop that handles the failures it expects (Redis
away: log, back off, try again) and, for anything unexpected inside one round,
logs the traceback and carries on with the next round. What still escapes a loop
is a bug that leaves the worker in a state nobody planned for, so it must not
go on looking healthy: `ThreadSupervisor` logs it, notes it, and asks the worker
to stop. The worker then hands back its jobs as at any stop and `Worker.run()`
raises `WorkerCrashed`, so `runworker` exits non-zero and a process manager
restarts it. Jobs whose outcome could not be written are recovered when their
leases run out.
"""

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Starts a thread: spawn(name, target).
Spawn = Callable[[str, Callable[[], None]], threading.Thread]


class StopSignal:
    """The worker's stop, in two steps, plus its one wake-up.

    `request_stop()` ends claiming; the renew and recorder threads go on so the
    jobs still running keep their leases and have their outcomes written.
    `halt()` ends everything, once running jobs ended or the grace period passed.
    `poke()` ends current `sleep()` calls early without stopping anything: a job
    deadline was set, or Redis answered again after an outage.
    """

    def __init__(self) -> None:
        # Reentrant: a signal handler may request a stop while the thread it
        # interrupts is inside one of these methods.
        self._changed = threading.Condition(threading.RLock())
        self._step = 0  # 0 running, 1 stopping (no more claims), 2 halted
        self._pokes = 0

    @property
    def stopping(self) -> bool:
        return self._step >= 1

    @property
    def halted(self) -> bool:
        return self._step >= 2

    def request_stop(self) -> None:
        self._advance(1)

    def halt(self) -> None:
        self._advance(2)

    def poke(self) -> None:
        with self._changed:
            self._pokes += 1
            self._changed.notify_all()

    def sleep_unless_stopping(self, timeout_s: float) -> None:
        """Sleep up to `timeout_s`; return early on a stop request or a poke."""
        self._sleep(timeout_s, 1)

    def sleep_unless_halted(self, timeout_s: float) -> None:
        """Sleep up to `timeout_s`; return early on `halt()` or a poke."""
        self._sleep(timeout_s, 2)

    def _advance(self, step: int) -> None:
        with self._changed:
            self._step = max(self._step, step)
            self._changed.notify_all()

    def _sleep(self, timeout_s: float, step: int) -> None:
        with self._changed:
            pokes = self._pokes
            self._changed.wait_for(
                lambda: self._step >= step or self._pokes != pokes, timeout_s
            )


class ThreadSupervisor:
    """Starts a worker's threads and stops the worker if one of them dies."""

    def __init__(self, worker_id: str, stop: StopSignal) -> None:
        self._worker_id, self._stop = worker_id, stop
        self._lock = threading.Lock()
        self.crashed: list[tuple[str, BaseException]] = []

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        """Start `target` in a daemon thread named `name`, under the rule above."""
        thread = threading.Thread(
            target=self._guard, args=(name, target), name=name, daemon=True
        )
        thread.start()
        return thread

    def _guard(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as err:
            self.note_crash(name, err)

    def note_crash(self, name: str, err: BaseException) -> None:
        """Log that thread `name` died of `err` and stop the worker (any thread)."""
        logger.critical(
            "worker thread died, stopping the worker id=%s thread=%s",
            self._worker_id,
            name,
            exc_info=err,
        )
        with self._lock:
            self.crashed.append((name, err))
        self._stop.request_stop()
