"""One scheduler tick: make due jobs ready, take back expired leases, trim listings.

The scheduler only moves jobs between Redis structures; it never runs one. Every
worker runs it (unless ``--no-scheduler``); each step is an atomic script, so any
number of schedulers can tick at once without doing the same move twice.
"""

import logging
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
    # A job delayed while the scheduler sleeps is seen at its next tick: this cap
    # keeps a delayed job's start within a second of its due time, with margin.
    max_sleep_ms: int = 500


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
        #: Due ms of the earliest scheduled job seen by the last tick; -1 if none.
        self.next_due_ms = -1

    def tick(self, now_ms: int) -> int:
        """Do what is due at `now_ms`; return the ms at which to tick next."""
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
        if now_ms >= self._next_trim_ms:
            for queue in self.queues:
                self.store.trim_finished(queue, now_ms)
            self.store.trim_workers(now_ms)
            self._next_trim_ms = now_ms + self.config.trim_every_ms
        return max(wake_ms, now_ms)

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
