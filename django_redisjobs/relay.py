"""The outbox relay: moves committed outbox rows to Redis until stopped.

It runs as a thread of `runworker` and as ``manage.py relay_outbox``. Producers
deliver their own rows right after each commit (`outbox`), so the relay only
sweeps what they could not: rows written while Redis was down, or by a process
that died between its commit and its delivery. It therefore reads the table once
per `poll` (one indexed query per database), not after every commit, and takes
only rows older than `grace`, which a live producer has had time to deliver.
While deliveries fail it backs off up to `MAX_BACKOFF`, and says so at WARNING
once per `WARN_EVERY`, so an outage is neither hammered nor silent.
"""

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

from django.db import close_old_connections, connections

from . import outbox

logger = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(seconds=10)
WARN_EVERY = timedelta(seconds=60)


class OutboxRelay:
    """Sweeps the outbox tables of `databases` into Redis."""

    def __init__(
        self,
        databases: Sequence[str],
        *,
        batch: int = 500,
        poll: timedelta = timedelta(seconds=1),
        grace: timedelta = timedelta(seconds=1),
    ) -> None:
        self.databases = tuple(databases)
        self.batch = batch
        self.poll = poll
        self.grace = grace
        self.delivered = 0  # rows that left the outbox
        self.stored = 0  # jobs those rows stored (see outbox.Delivery.stored)
        self._stop = threading.Event()
        self._failing_since: float | None = None
        self._warned_at = -WARN_EVERY.total_seconds()

    def sweep(self, *, grace: timedelta | None = None) -> int:
        """Deliver every row old enough, batch by batch, from each database; return
        how many rows left the outbox. Raises what a delivery raised (the rows of
        that batch stay); the batches before it are delivered."""
        moved = 0
        for using in self.databases:
            while not self._stop.is_set():
                delivery = outbox.deliver(
                    using,
                    older_than=self.grace if grace is None else grace,
                    limit=self.batch,
                )
                moved += len(delivery)
                self.delivered += len(delivery)
                self.stored += delivery.stored
                if len(delivery) < self.batch:
                    break
        return moved

    def run(self) -> None:
        """Sweep every `poll` until `stop()`; failures are logged, never raised."""
        backoff = self.poll.total_seconds()
        try:
            while not self._stop.is_set():
                close_old_connections()
                try:
                    moved = self.sweep()
                except Exception as err:
                    self._failed(err)
                    backoff = min(backoff * 2, MAX_BACKOFF.total_seconds())
                else:
                    self._recovered(moved)
                    backoff = self.poll.total_seconds()
                self._stop.wait(backoff)
        finally:
            connections.close_all()

    def start(self) -> threading.Thread:
        """Run in a daemon thread (it holds no job: stopping it loses nothing)."""
        thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _failed(self, err: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._warned_at >= WARN_EVERY.total_seconds():
            self._warned_at = now
            waiting = ", ".join(f"{using}={_count(using)}" for using in self.databases)
            logger.warning(
                "outbox relay cannot deliver, retrying; rows waiting %s (%s: %s)",
                waiting,
                type(err).__name__,
                err,
            )

    def _recovered(self, moved: int) -> None:
        if self._failing_since is not None:
            logger.warning(
                "outbox relay delivering again after %.0f s; moved %d row(s)",
                time.monotonic() - self._failing_since,
                moved,
            )
            self._failing_since = None
            self._warned_at = -WARN_EVERY.total_seconds()
        elif moved:
            logger.info("outbox relay moved %d row(s) to redis", moved)


def _count(using: str) -> str:
    try:
        return str(outbox.pending(using)[0])
    except Exception:
        return "?"
