"""The worker's maintenance thread: timeouts, heartbeat and held leases, scheduler.

Timeouts of sync jobs are enforced first on each round, since they need no Redis.
Every third of the lease, the heartbeat renews the leases of the jobs this worker
holds and refreshes its worker entry; between beats the scheduler ticks when due.
While Redis is away the thread backs off and tries again.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .backoff import Backoff
from .exceptions import RedisUnavailable
from .pool import ExecutorPool
from .queue import JobStore, WorkerInfo
from .scheduler import Scheduler


@dataclass(frozen=True)
class Heartbeat:
    """Renews the leases of the jobs a worker holds and refreshes its entry."""

    store: JobStore
    info: WorkerInfo
    lease_ms: int
    clock: Callable[[], int]
    held: Callable[[], dict[str, list[str]]]  # job ids by queue
    counts: Callable[[], dict[str, int]]  # attempt outcomes by status

    def send(self) -> None:
        now = self.clock()
        self.store.renew_leases(self.held(), now + self.lease_ms)
        self.store.heartbeat(self.info, now + self.lease_ms, self.counts())


@dataclass(frozen=True)
class MaintenanceEvents:
    """The worker's events the maintenance thread reads."""

    stopping: threading.Event  # no more claims: the scheduler stops ticking
    halt: threading.Event  # the thread ends (set `wake` too)
    wake: threading.Event  # ends the current wait early (a job deadline was set)


class Maintenance:
    """Runs the maintenance loop in a thread of its own until `events.halt`.

    `scheduler` is asked for the scheduler at each round (None: the worker runs
    none), so one set on the worker after it was built is the one that ticks.
    """

    def __init__(
        self,
        heartbeat: Heartbeat,
        pool: ExecutorPool,
        scheduler: Callable[[], Scheduler | None],
        backoff: Backoff,
        events: MaintenanceEvents,
    ) -> None:
        self._heartbeat, self._pool, self._scheduler = heartbeat, pool, scheduler
        self._backoff, self._events = backoff, events
        self._thread = threading.Thread(
            target=self._loop, name="redisjobs-maintenance", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        clock, lease_ms = self._heartbeat.clock, self._heartbeat.lease_ms
        halt = self._events.halt
        next_beat = next_tick = 0
        while not halt.is_set():
            scheduler = self._scheduler()
            # Timeouts first: they need no Redis, so an outage must not delay them.
            deadline = self._pool.enforce_timeouts()
            now = clock()
            try:
                if now >= next_beat:
                    self._heartbeat.send()
                    next_beat = now + lease_ms // 3
                    self._contact(scheduler)
                if (
                    scheduler is not None
                    and now >= next_tick
                    and not self._events.stopping.is_set()
                ):
                    next_tick = scheduler.tick(now)
                    self._contact(scheduler)
                self._backoff.reset()
            except RedisUnavailable as err:
                self._backoff.wait(halt, err)
                continue
            self._sleep(min(next_beat, next_tick if scheduler else next_beat), deadline)

    def _sleep(self, wake_ms: int, deadline: float | None) -> None:
        """Until `wake_ms` (clock time) or the next job deadline, at most 1 s."""
        wait_s = max(min((wake_ms - self._heartbeat.clock()) / 1000, 1.0), 0.01)
        if deadline is not None:
            wait_s = min(wait_s, max(deadline - time.monotonic(), 0.01))
        self._events.wake.wait(wait_s)
        self._events.wake.clear()

    def _contact(self, scheduler: Scheduler | None) -> None:
        """Tell the scheduler Redis answered (it holds recovery after a silence)."""
        if scheduler is not None:
            scheduler.note_contact(self._heartbeat.clock())
