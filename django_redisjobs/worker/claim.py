"""Claiming: how many jobs to lease next, from which queues, and the idle hand-over.

A worker holds at most `concurrency` + its prefetch jobs; each claimed job takes
a slot (counted by the ledger) until its attempt ends, so a worker never holds
more jobs than it can start soon. The prefetch adapts to how long attempts take:
about `PREFETCH_WINDOW_S` of work per thread waits locally, up to `--prefetch`.
Short jobs then come in large batches (one claim round trip for dozens), and long
ones are not hoarded away from other workers. The worker claims again once half
its prefetch is free rather than at every freed slot, while the other half keeps
the threads busy during the claim. Queues are tried in the configured order, or
in an order drawn by weight at each claim.
"""

import random
import threading
from collections.abc import Callable, Sequence

from ..job import Job
from ..queue import Damaged, JobStore
from .config import WorkerConfig
from .ledger import Ledger

# Work held ahead per thread, in seconds of average attempt time.
PREFETCH_WINDOW_S = 0.05
# Weight of the latest attempt in the running average of attempt times.
_AVERAGE_WEIGHT = 0.1
# How long the claim loop waits for free slots before it looks at its stop
# signal and `max_jobs` again.
_SLOT_WAIT_S = 0.5

Claimed = Job | Damaged


class Prefetch:
    """How many jobs to hold beyond the threads: `prefetch` until attempts are
    timed, then about PREFETCH_WINDOW_S of work per thread (at least 1)."""

    def __init__(self, concurrency: int, prefetch: int) -> None:
        self._concurrency, self._max_ahead = concurrency, prefetch
        self._average_s: float | None = None  # None: no attempt timed yet

    def ahead(self) -> int:
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

    def reserve(self, ledger: Ledger, limit: int, timeout_s: float) -> int:
        """Reserve slots in `ledger` once at least half the prefetch (1 at least)
        is free: every free slot, at most `limit`; 0 when too few came free."""
        ahead = self.ahead()
        need = max(1, min(ahead // 2, limit))
        return ledger.reserve(self._concurrency + ahead, need, limit, timeout_s)


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
    """Reserves slots and claims that many jobs from the worker's queues."""

    def __init__(
        self,
        config: WorkerConfig,
        store: JobStore,
        ledger: Ledger,
        worker_id: str,
        clock: Callable[[], int],
        lease_ms: int,
        rng: random.Random | None = None,
    ) -> None:
        self._config, self._store, self._ledger = config, store, ledger
        self._worker_id, self._clock, self._lease_ms = worker_id, clock, lease_ms
        self._rng = rng or random.Random()  # noqa: S311 - orders queues, no secret
        self.prefetch = Prefetch(config.concurrency, config.prefetch)

    def reserve(self) -> int:
        """Wait a moment for enough free slots, then reserve every free one within
        what `max_jobs` leaves; 0 when too few came free."""
        limit = self._config.concurrency + self._config.prefetch
        if self._config.max_jobs is not None:
            limit = min(limit, self._config.max_jobs - self._ledger.claimed_total)
        return self.prefetch.reserve(self._ledger, limit, _SLOT_WAIT_S)

    def claim(self, reserved: int) -> list[Claimed]:
        """Claim up to `reserved` jobs, in claim order, into the ledger."""
        claimed: list[Claimed] = []
        now_ms = self._clock()
        try:
            for queue_name in self._queue_order():
                wanted = reserved - len(claimed)
                if wanted <= 0:
                    break
                try:
                    claimed += self._store.claim(
                        queue_name, self._worker_id, wanted, now_ms, self._lease_ms
                    )
                except Exception:
                    if not claimed:
                        raise
                    # Jobs claimed from earlier queues are leased to this worker:
                    # run them; the next claim meets the error again and backs off.
                    break
        except BaseException:
            self._ledger.release(reserved)
            raise
        return self._enter(claimed, reserved)

    def wait_then_claim(self, reserved: int, wait_s: float) -> list[Claimed]:
        """Block until a queue may have jobs, then claim from the first queue in
        the same round trip (another queue's jobs come with the next `claim`).

        The wait stays under a quarter of a lease: the claim's lease deadline is
        counted from before the wait, and heartbeats renew every third of a lease.
        """
        try:
            claimed = self._store.wait_then_claim(
                self._queue_order(),
                min(wait_s, self._lease_ms / 4000),
                self._worker_id,
                reserved,
                self._clock(),
                self._lease_ms,
            )
        except BaseException:
            self._ledger.release(reserved)
            raise
        return self._enter(claimed, reserved)

    def _enter(self, claimed: list[Claimed], reserved: int) -> list[Claimed]:
        self._ledger.claimed(
            (item.job if isinstance(item, Damaged) else item for item in claimed),
            reserved,
        )
        return claimed

    def _queue_order(self) -> Sequence[str]:
        if self._config.weights is None:
            return self._config.queues
        return weighted_order(
            self._config.queues, self._config.weights, self._rng.random
        )


class Handover:
    """The idle fast path: a wait-and-claim given to an executor thread that is
    waiting for work, and what it hands back to the claim loop.

    The thread claims, keeps the first job to run itself, and hands the rest to
    the loop, so on the way from an idle queue to a running job no thread passes
    the job to another (about 0.2 ms saved per wake-up). The loop withdraws the
    task if no thread starts it within `WITHDRAW_S` (a thread it counted as
    waiting took a job first) and then claims itself.
    """

    WITHDRAW_S = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "queued"  # then "started" or "withdrawn"
        self._started = threading.Event()
        self._ready = threading.Event()
        self._count = 0
        self._rest: list[Claimed] = []
        self._error: BaseException | None = None

    def start(self) -> bool:
        """On the executor thread: False when the claim loop withdrew the task."""
        with self._lock:
            if self._state == "withdrawn":
                return False
            self._state = "started"
        self._started.set()
        return True

    def withdrawn(self) -> bool:
        """On the claim loop: wait a moment for the task to start; withdraw it
        when it has not (True: claim yourself)."""
        self._started.wait(self.WITHDRAW_S)
        with self._lock:
            if self._state == "queued":
                self._state = "withdrawn"
                return True
            return False

    def finish(
        self, count: int, rest: list[Claimed], error: BaseException | None = None
    ) -> None:
        """On the executor thread: how many jobs it claimed, those the loop must
        dispatch, or the claim's error."""
        self._count, self._rest, self._error = count, rest, error
        self._ready.set()

    def result(self) -> tuple[int, list[Claimed]]:
        """On the claim loop: wait for `finish`; raise the claim's error."""
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self._count, self._rest
