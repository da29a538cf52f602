"""Renewing: the thread that keeps a worker's leases, timeouts and schedule going.

Timeouts of sync jobs are enforced first on each round, since they need no Redis.
Every third of the lease, the heartbeat renews the leases of every job in the
ledger and refreshes the worker's entry; between beats the scheduler ticks when
due. While Redis is away the thread backs off and tries again. An unexpected
error in a scheduler tick (damaged data in a queue's keys) is logged with its
traceback and the tick is retried after a backoff, while heartbeats go on: a
worker whose scheduler fails must still keep its running jobs' leases.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..exceptions import RedisUnavailable
from ..queue import JobStore, WorkerInfo
from ..scheduler import Scheduler
from .backoff import Backoff
from .ledger import Ledger
from .run import ExecutorPool
from .supervision import StopSignal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Heartbeat:
    """Renews the leases of the jobs a worker holds and refreshes its entry."""

    store: JobStore
    info: WorkerInfo
    ledger: Ledger
    lease_ms: int
    clock: Callable[[], int]

    def send(self) -> None:
        now = self.clock()
        self.store.renew_leases(self.ledger.held_by_queue(), now + self.lease_ms)
        # Outcome counts, and how many jobs it holds now (for the admin).
        stats = {**self.ledger.counts().by_status, "held": len(self.ledger.held_ids())}
        self.store.heartbeat(self.info, now + self.lease_ms, stats)


class Renewer:
    """The renew loop, run in a thread of its own until the worker halts."""

    def __init__(
        self,
        heartbeat: Heartbeat,
        pool: ExecutorPool,
        scheduler: Scheduler | None,
        stop: StopSignal,
        retry_cap_s: float,
    ) -> None:
        self._heartbeat, self._pool, self._scheduler = heartbeat, pool, scheduler
        self._stop = stop
        self._beat_backoff = Backoff("heartbeat", cap_s=retry_cap_s, reached=stop.poke)
        self._tick_backoff = Backoff("scheduler tick", cap_s=retry_cap_s)
        self._next_beat = self._next_tick = 0

    def run(self) -> None:
        while not self._stop.halted:
            # Timeouts first: they need no Redis, so an outage must not delay them.
            deadline = self._pool.enforce_timeouts()
            now = self._heartbeat.clock()
            if now >= self._next_beat and not self._beat(now):
                continue
            if (
                self._scheduler is not None
                and now >= self._next_tick
                and not self._stop.stopping
            ):
                self._tick(self._scheduler, now)
            self._sleep_until(deadline)

    def _beat(self, now: int) -> bool:
        try:
            self._heartbeat.send()
        except RedisUnavailable as err:
            self._beat_backoff.wait(self._stop.sleep_unless_halted, err)
            return False
        self._beat_backoff.reset()
        self._next_beat = now + self._heartbeat.lease_ms // 3
        self._contact()
        return True

    def _tick(self, scheduler: Scheduler, now: int) -> None:
        try:
            self._next_tick = scheduler.tick(now)
        except RedisUnavailable as err:
            self._next_tick = now + self._delay_ms(self._tick_backoff, err, False)
            return
        except Exception as err:
            self._next_tick = now + self._delay_ms(self._tick_backoff, err, True)
            return
        self._tick_backoff.reset()
        self._contact()

    @staticmethod
    def _delay_ms(backoff: Backoff, err: BaseException, trace: bool) -> int:
        """Log through `backoff` and return its next interval, without sleeping:
        the loop's own sleep serves, so heartbeats keep their pace."""
        wait_s = backoff.next_s
        backoff.wait(lambda _s: None, err, trace=trace)
        return int(wait_s * 1000)

    def _sleep_until(self, deadline: float | None) -> None:
        """Until the next beat or tick (clock time) or the next job deadline,
        at most 1 s."""
        wake_ms = self._next_beat
        if self._scheduler is not None and not self._stop.stopping:
            wake_ms = min(wake_ms, self._next_tick)
        wait_s = max(min((wake_ms - self._heartbeat.clock()) / 1000, 1.0), 0.01)
        if deadline is not None:
            wait_s = min(wait_s, max(deadline - time.monotonic(), 0.01))
        self._stop.sleep_unless_halted(wait_s)

    def _contact(self) -> None:
        """Tell the scheduler Redis answered (it holds recovery after a silence)."""
        if self._scheduler is not None:
            self._scheduler.note_contact(self._heartbeat.clock())
