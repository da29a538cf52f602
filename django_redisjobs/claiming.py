"""Claiming for one worker: batches within its slots, from its queues in order.

A worker has `concurrency + prefetch` slots; each claimed job takes one until its
attempt ends, so a worker never holds more jobs than it can start soon. It claims
again once half its prefetch is free rather than at every freed slot: short jobs
then come in batches of about prefetch / 2 per round trip, not one by one, while
the other half keeps the threads busy during the claim. Queues are tried in the
configured order, or in an order drawn by weight at each claim.
"""

import random
import threading
from collections.abc import Callable, Sequence

from .queue import REDIS_ERRORS, Claimed, JobStore
from .worker_types import WorkerConfig


def weighted_order(
    queues: Sequence[str], weights: Sequence[int], rand: Callable[[], float]
) -> list[str]:
    """`queues` in a random order: each place goes to one of the queues left, with a
    probability proportional to its weight. `rand` returns floats in [0, 1)."""
    left = list(zip(queues, weights, strict=True))
    order: list[str] = []
    while left:
        pick = rand() * sum(weight for _, weight in left)
        index = 0
        while index < len(left) - 1 and pick >= left[index][1]:
            pick -= left[index][1]
            index += 1
        order.append(left.pop(index)[0])
    return order


class Claimer:
    """Takes free slots and claims that many jobs from the worker's queues."""

    def __init__(
        self,
        config: WorkerConfig,
        store: JobStore,
        worker_id: str,
        clock: Callable[[], int],
        lease_ms: int,
        rng: random.Random,
    ) -> None:
        self._config, self._store, self._worker_id = config, store, worker_id
        self._clock, self._lease_ms, self._rng = clock, lease_ms, rng
        self._total = config.concurrency + config.prefetch
        self._free = self._total
        # A claim waits for this many free slots; while fewer are free, every
        # thread has a job and at least half the prefetch is still waiting.
        self._refill_at = max(1, config.prefetch // 2)
        self._need = self._refill_at  # what the waiting claim asks for
        self._changed = threading.Condition()

    def take_slots(self, claimed_so_far: int) -> int:
        """Wait up to 0.5 s until enough slots are free to refill, then take every
        free one, within what `max_jobs` leaves after `claimed_so_far`; 0 when
        too few came free."""
        limit = self._total
        if self._config.max_jobs is not None:
            limit = min(limit, self._config.max_jobs - claimed_so_far)
        with self._changed:
            self._need = need = max(1, min(self._refill_at, limit))
            if not self._changed.wait_for(lambda: self._free >= need, timeout=0.5):
                return 0
            taken = min(self._free, limit)
            self._free -= taken
        return taken

    def give_back(self, count: int = 1) -> None:
        """Free `count` slots: unused by a claim, or their jobs' attempts ended."""
        with self._changed:
            if self._free + count > self._total:
                raise ValueError("Slots given back more often than taken.")
            self._free += count
            # Wake the claim only when it can go: not once per ended job.
            if self._free >= self._need:
                self._changed.notify()

    def claim(self, limit: int) -> list[tuple[str, Claimed]]:
        """Claim up to `limit` jobs, as (queue, claimed) pairs in claim order."""
        claimed: list[tuple[str, Claimed]] = []
        now_ms = self._clock()
        for queue_name in self._queue_order():
            wanted = limit - len(claimed)
            if wanted <= 0:
                break
            try:
                items = self._store.claim(
                    queue_name, self._worker_id, wanted, now_ms, self._lease_ms
                )
            except REDIS_ERRORS:
                if not claimed:
                    raise
                # Jobs claimed from earlier queues are leased to this worker: run
                # them; the next claim meets the error again and backs off.
                break
            claimed.extend((queue_name, item) for item in items)
        return claimed

    def wait_then_claim(self, limit: int, wait_s: float) -> list[tuple[str, Claimed]]:
        """Block until a queue may have jobs, then claim from the first queue in
        the same round trip (another queue's jobs come with the next `claim`).

        The wait stays under a quarter of a lease: the claim's lease deadline is
        counted from before the wait, and heartbeats renew every third of a lease.
        """
        queues = self._queue_order()
        items = self._store.wait_then_claim(
            queues,
            min(wait_s, self._lease_ms / 4000),
            self._worker_id,
            limit,
            self._clock(),
            self._lease_ms,
        )
        return [(queues[0], item) for item in items]

    def _queue_order(self) -> Sequence[str]:
        if self._config.weights is None:
            return self._config.queues
        return weighted_order(
            self._config.queues, self._config.weights, self._rng.random
        )
