"""Recording: a thread that writes ended attempts' outcomes to Redis in batches.

An outcome reaches the recorder already encoded (result JSON and error text made
storable by `execution`), so no value a job returned or raised can break a
write. While Redis is away the recorder backs off and tries again; its jobs stay
in the ledger meanwhile, so the heartbeat keeps renewing their leases. An
outcome that Redis refuses for another reason (a damaged key) is written on its
own, so it cannot hold back the rest of its batch, and is then given up with an
ERROR line: its lease runs out and the job is recovered.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable

from ..exceptions import RedisUnavailable
from ..queue import JobStore, Outcome
from .backoff import Backoff
from .ledger import Ledger
from .supervision import Spawn, StopSignal

logger = logging.getLogger(__name__)

_OUTCOME_BATCH = 256
# How long the recorder waits for more outcomes before writing, while other
# attempts are in flight: a drain of short jobs then writes a few dozen per round
# trip instead of one or two. Idle, an outcome is written at once.
_LINGER_S = 0.002


class OutcomeRecorder:
    """Queues outcomes and writes them from a thread of its own.

    The worker's halt (`stop.halt()`) ends the write backoff: outcomes Redis
    still refuses are then given up (their leases run out and the jobs run again
    elsewhere). When Redis answers again after failed writes, `stop.poke()` lets
    the claim loop retry at once.
    """

    def __init__(
        self,
        store: JobStore,
        ledger: Ledger,
        worker_id: str,
        clock: Callable[[], int],
        stop: StopSignal,
        retry_cap_s: float,
    ) -> None:
        self._store, self._ledger = store, ledger
        self._worker_id, self._clock = worker_id, clock
        self._stop, self._retry_cap_s = stop, retry_cap_s
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: Set while Redis refuses outcomes (away, full, read-only): the claim
        #: loop claims nothing more until they are written.
        self.failing = threading.Event()

    def record(self, outcome: Outcome) -> None:
        """Queue an outcome; its job stays in the ledger until it is stored."""
        self._outcomes.put(outcome)

    def start(self, spawn: Spawn) -> None:
        self._thread = spawn("redisjobs-recorder", self._record_loop)

    def close(self, timeout_s: float) -> None:
        """Write what is queued, then end the thread (waiting at most `timeout_s`)."""
        self._outcomes.put(None)
        self.join(timeout_s)

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _record_loop(self) -> None:
        done = False
        while not done:
            batch = [self._outcomes.get()]
            # More than the one just recorded (it may not have ended yet).
            if batch[0] is not None and self._ledger.busy():
                time.sleep(_LINGER_S)
            while len(batch) < _OUTCOME_BATCH:
                try:
                    batch.append(self._outcomes.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            self._write([o for o in batch if o is not None])

    def _write(self, outcomes: list[Outcome]) -> None:
        backoff = Backoff(
            "recording outcomes", cap_s=self._retry_cap_s, reached=self._stop.poke
        )
        while outcomes:
            try:
                codes = self._store.finish(outcomes, self._worker_id, self._clock())
            except RedisUnavailable as err:
                self.failing.set()
                if self._stop.halted:
                    # Given up: their jobs stay in the ledger, and the worker's
                    # stop names them all (`Worker._account_for_held`).
                    return
                # Keep them (and their leases, see the heartbeat): these results
                # must reach Redis once it is back.
                backoff.wait(self._stop.sleep_unless_halted, err)
                continue
            except Exception:
                if len(outcomes) == 1:
                    _give_up(outcomes[0])
                    self._ledger.recorded([outcomes[0].job_id])
                    return
                # Find the one Redis refuses: each on its own.
                for outcome in outcomes:
                    self._write([outcome])
                return
            backoff.reset()
            self.failing.clear()
            _warn_unrecorded(outcomes, codes)
            self._ledger.recorded(outcome.job_id for outcome in outcomes)
            return


def _warn_unrecorded(outcomes: list[Outcome], codes: list[int]) -> None:
    for outcome, code in zip(outcomes, codes, strict=True):
        if code != 1:
            logger.warning(
                "outcome not recorded, job no longer held by this worker "
                "job id=%s queue=%s outcome=%s",
                outcome.job_id,
                outcome.queue,
                outcome.status,
            )


def _give_up(outcome: Outcome) -> None:
    logger.exception(
        "redis refused an outcome; the job is recovered when its lease runs out "
        "job id=%s queue=%s outcome=%s",
        outcome.job_id,
        outcome.queue,
        outcome.status,
    )
