"""One scheduler tick: make due jobs ready, take back expired leases, trim listings.

The scheduler only moves jobs between Redis structures; it never runs one. Every
worker runs it (unless ``--no-scheduler``); each step is an atomic script, so any
number of schedulers can tick at once without doing the same move twice.

A lease runs out when its holder stops renewing it, which is what a dead worker
looks like, but also what every worker looks like after Redis was unreachable for
everyone (a restart, a pause, a cut): live holders could not renew either. So after
a gap in its own contact with Redis, and when it starts, a scheduler waits one lease
before recovering anything, which gives live holders that time to renew their
leases or record their outcomes first (`note_contact`).
"""

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .queue import JobStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerConfig:
    """Batch sizes and intervals, in ms, of the scheduler's steps."""

    promote_limit: int = 500
    recover_limit: int = 100
    recover_every_ms: int = 1_000
    trim_every_ms: int = 60_000
    max_sleep_ms: int = 1_000
    #: A longer silence than this between round trips to Redis may have let live
    #: workers' leases run out; a holder renews every third of a lease, so its lease
    #: runs out only after two thirds of a lease without contact.
    contact_gap_ms: int = 15_000
    #: How long recovery waits after such a gap, and at start: one lease.
    recovery_hold_ms: int = 30_000

    @classmethod
    def for_lease(cls, lease_ms: int) -> "SchedulerConfig":
        """Intervals scaled to the lease: recovery runs at least every third of it."""
        return cls(
            recover_every_ms=max(min(1_000, lease_ms // 3), 1),
            contact_gap_ms=lease_ms // 2,
            recovery_hold_ms=lease_ms,
        )


class Scheduler:
    """Keeps a set of queues' delayed and leased jobs moving."""

    def __init__(
        self,
        store: JobStore,
        queues: Sequence[str],
        config: SchedulerConfig | None = None,
    ) -> None:
        self.store = store
        self.queues = tuple(queues)
        self.config = config or SchedulerConfig()
        self._next_recover_ms = 0
        self._next_trim_ms = 0
        self._last_contact_ms: int | None = None
        # A burst worker's claim thread ticks too; a hold set while a tick runs
        # must not be overwritten by it.
        self._lock = threading.Lock()
        #: Due ms of the earliest scheduled job seen by the last tick; -1 if none.
        self.next_due_ms = -1

    def tick(self, now_ms: int) -> int:
        """Do what is due at `now_ms`; return the ms at which to tick next."""
        with self._lock:
            return self._tick(now_ms)

    def _tick(self, now_ms: int) -> int:
        wake_ms = now_ms + self.config.max_sleep_ms
        self.next_due_ms = -1
        for queue in self.queues:
            next_due = self._promote(queue, now_ms)
            if next_due != -1:
                wake_ms = min(wake_ms, next_due)
                if self.next_due_ms == -1 or next_due < self.next_due_ms:
                    self.next_due_ms = next_due
        if now_ms >= self._next_recover_ms:
            for queue in self.queues:
                self._recover(queue, now_ms)
            self._next_recover_ms = now_ms + self.config.recover_every_ms
        wake_ms = min(wake_ms, self._next_recover_ms)
        if now_ms >= self._next_trim_ms:
            for queue in self.queues:
                self.store.trim_finished(queue, now_ms)
            self.store.trim_workers(now_ms)
            self._next_trim_ms = now_ms + self.config.trim_every_ms
        return max(wake_ms, now_ms)

    def note_contact(self, now_ms: int) -> None:
        """Record a successful round trip to Redis at `now_ms`.

        The first call, and a call after a silence longer than `contact_gap_ms`,
        hold lease recovery for `recovery_hold_ms`: a lease that ran out during the
        silence may belong to a live worker that could not renew it.
        """
        with self._lock:
            last = self._last_contact_ms
            self._last_contact_ms = now_ms
            if last is not None and now_ms - last <= self.config.contact_gap_ms:
                return
            hold_until = now_ms + self.config.recovery_hold_ms
            self._next_recover_ms = max(self._next_recover_ms, hold_until)
        if last is not None:
            logger.warning(
                "no contact with redis for %d ms; lease recovery waits %d ms so live "
                "workers can renew first",
                now_ms - last,
                self.config.recovery_hold_ms,
            )

    def _promote(self, queue: str, now_ms: int) -> int:
        limit = self.config.promote_limit
        while True:
            moved, next_due = self.store.promote_due(queue, now_ms, limit)
            if moved:
                logger.debug("promoted due jobs queue=%s count=%d", queue, moved)
            # A full batch may have left more due jobs behind: go again.
            if moved < limit:
                return next_due

    def _recover(self, queue: str, now_ms: int) -> None:
        recovered = self.store.recover_expired(queue, now_ms, self.config.recover_limit)
        for job_id in recovered.job_ids:
            logger.warning(
                "recovered job from a lost worker job id=%s queue=%s", job_id, queue
            )
        if recovered.dead:
            logger.warning(
                "jobs out of attempts after a lost worker queue=%s count=%d",
                queue,
                recovered.dead,
            )
