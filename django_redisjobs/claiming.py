"""Claiming for one worker: batches within its slots, from its queues in order.

A worker holds at most `concurrency` + its prefetch jobs; each claimed job takes
a slot until its attempt ends, so a worker never holds more jobs than it can
start soon. The prefetch adapts to how long attempts take: about
`PREFETCH_WINDOW_S` of work per thread waits locally, up to `--prefetch`. Short
jobs then come in large batches (one claim round trip for dozens), and long ones
are not hoarded away from other workers. The worker claims again once half its
prefetch is free rather than at every freed slot, while the other half keeps the
threads busy during the claim. Queues are tried in the configured order, or in
an order drawn by weight at each claim.
"""

import random
import threading
from collections.abc import Callable, Sequence

from .exceptions import RedisUnavailable
from .job import Job
from .queue import Damaged, JobStore
from .worker_types import WorkerConfig

# Work held ahead per thread, in seconds of average attempt time.
PREFETCH_WINDOW_S = 0.05
# Weight of the latest attempt in the running average of attempt times.
_AVERAGE_WEIGHT = 0.1


class Slots:
    """How many jobs a worker may claim now: `concurrency` plus an adaptive
    prefetch of at most `prefetch`."""

    def __init__(self, concurrency: int, prefetch: int) -> None:
        self._concurrency, self._max_ahead = concurrency, prefetch
        self._held = 0
        self._average_s: float | None = None  # None: no attempt timed yet
        self._wake_at = -1  # the claim waiting in `take` goes once held <= this
        self._changed = threading.Condition()

    def ahead(self) -> int:
        """Jobs to hold beyond the threads: the full prefetch until attempts
        are timed, then about PREFETCH_WINDOW_S of work per thread (at least 1)."""
        average = self._average_s
        if average is None or self._max_ahead == 0:
            return self._max_ahead
        wanted = self._concurrency * PREFETCH_WINDOW_S / max(average, 1e-6)
        return max(1, min(self._max_ahead, int(wanted)))

    def timed(self, seconds: float) -> None:
        """An attempt of a sync job took `seconds` (any thread; a lost update
        under a race only delays the average a little)."""
        average = self._average_s
        self._average_s = (
            seconds
            if average is None
            else average + _AVERAGE_WEIGHT * (seconds - average)
        )

    def take(self, limit: int, timeout_s: float) -> int:
        """Wait up to `timeout_s` until at least half the prefetch (1 at least) is
        free, then take every free slot, at most `limit`; 0 when too few came free."""
        with self._changed:
            ahead = self.ahead()
            room = self._concurrency + ahead
            need = max(1, min(ahead // 2, limit))
            self._wake_at = room - need
            if not self._changed.wait_for(
                lambda: self._held <= self._wake_at, timeout=timeout_s
            ):
                return 0
            taken = min(room - self._held, limit)
            self._held += taken
            return taken

    def give_back(self, count: int = 1) -> None:
        """Free `count` slots: unused by a claim, or their jobs' attempts ended."""
        with self._changed:
            if count > self._held:
                raise ValueError("Slots given back more often than taken.")
            self._held -= count
            # Wake the claim only when it can go: not once per ended job.
            if self._held <= self._wake_at:
                self._changed.notify()


class Handover:
    """A wait-and-claim given to an executor thread, and what it hands back to the
    claim loop: how many jobs it claimed and those the loop still has to dispatch.

    The loop withdraws the task if no thread starts it within a moment (a thread
    it counted as waiting took a job first) and then claims itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "queued"  # then "started" or "withdrawn"
        self._started = threading.Event()
        self._ready = threading.Event()
        self._count = 0
        self._rest: list[tuple[str, Job | Damaged]] = []
        self._error: Exception | None = None

    def start(self) -> bool:
        """On the executor thread: False when the claim loop withdrew the task."""
        with self._lock:
            if self._state == "withdrawn":
                return False
            self._state = "started"
        self._started.set()
        return True

    def withdrawn(self, wait_s: float) -> bool:
        """On the claim loop: wait up to `wait_s` for the task to start; withdraw
        it when it has not (True: claim yourself)."""
        self._started.wait(wait_s)
        with self._lock:
            if self._state == "queued":
                self._state = "withdrawn"
                return True
            return False

    def finish(
        self,
        count: int,
        rest: list[tuple[str, Job | Damaged]],
        error: Exception | None = None,
    ) -> None:
        self._count, self._rest, self._error = count, rest, error
        self._ready.set()

    def result(self) -> tuple[int, list[tuple[str, Job | Damaged]]]:
        """Wait for `finish`; raise the claim's error if it failed."""
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self._count, self._rest


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
        self.slots = Slots(config.concurrency, config.prefetch)

    def take_slots(self, claimed_so_far: int) -> int:
        """Wait up to 0.5 s until enough slots are free to refill, then take every
        free one, within what `max_jobs` leaves after `claimed_so_far`; 0 when
        too few came free."""
        limit = self._config.concurrency + self._config.prefetch
        if self._config.max_jobs is not None:
            limit = min(limit, self._config.max_jobs - claimed_so_far)
        return self.slots.take(limit, 0.5)

    def give_back(self, count: int = 1) -> None:
        """Free `count` slots: unused by a claim, or their jobs' attempts ended."""
        self.slots.give_back(count)

    def claim(self, limit: int) -> list[tuple[str, Job | Damaged]]:
        """Claim up to `limit` jobs, as (queue, claimed) pairs in claim order."""
        claimed: list[tuple[str, Job | Damaged]] = []
        now_ms = self._clock()
        for queue_name in self._queue_order():
            wanted = limit - len(claimed)
            if wanted <= 0:
                break
            try:
                items = self._store.claim(
                    queue_name, self._worker_id, wanted, now_ms, self._lease_ms
                )
            except RedisUnavailable:
                if not claimed:
                    raise
                # Jobs claimed from earlier queues are leased to this worker: run
                # them; the next claim meets the error again and backs off.
                break
            claimed.extend((queue_name, item) for item in items)
        return claimed

    def wait_then_claim(
        self, limit: int, wait_s: float
    ) -> list[tuple[str, Job | Damaged]]:
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
