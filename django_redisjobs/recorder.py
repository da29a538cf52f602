"""The worker's outcome recorder: what this worker holds, and writing its outcomes.

Each claimed job is *in flight* from its claim until its attempt ends, and *held*
until its outcome is stored in Redis; the heartbeat renews the leases of held jobs,
so an outcome waiting out a Redis outage keeps its job. A recorder thread writes
outcomes in batches through `JobStore.finish`, backing off while Redis is away.
Waiters (burst mode's idle check, shutdown) wait on one condition that changes in
either count notify.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from .backoff import Backoff
from .exceptions import RedisUnavailable
from .job import Job
from .queue import Damaged, JobStore, Outcome

logger = logging.getLogger(__name__)

_OUTCOME_BATCH = 256
# How long the recorder waits for more outcomes before writing, while other
# attempts are in flight: a drain of short jobs then writes a few dozen per round
# trip instead of one or two. Idle, an outcome is written at once.
_LINGER_S = 0.002


class OutcomeRecorder:
    """Tracks held and in-flight jobs; a thread stores their outcomes in batches.

    `halt` ends the write backoff: outcomes Redis still refuses are then dropped
    (their leases run out and the jobs run again elsewhere). `reached` is set when
    Redis answers again after failed writes.
    """

    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        clock: Callable[[], int],
        halt: threading.Event,
        reached: threading.Event,
        retry_cap_s: float,
    ) -> None:
        self._store, self._worker_id, self._clock = store, worker_id, clock
        self._halt, self._reached, self._retry_cap_s = halt, reached, retry_cap_s
        self._in_flight = 0
        self._changed = threading.Condition()
        self._held: dict[str, str] = {}  # job id -> queue, until its outcome is stored
        self._held_lock = threading.Lock()
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._record_loop, name="redisjobs-recorder", daemon=True
        )

    # -- bookkeeping (any thread) ---------------------------------------------

    def hold(self, claimed: Sequence[tuple[str, Job | Damaged]]) -> None:
        """Jobs just claimed: held and in flight."""
        with self._held_lock:
            for queue_name, item in claimed:
                job = item.job if isinstance(item, Damaged) else item
                self._held[job.id] = queue_name
        with self._changed:
            self._in_flight += len(claimed)

    def ended(self) -> None:
        """One attempt ended (or a claimed job will not run): no longer in flight."""
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def record(self, outcome: Outcome) -> None:
        """Queue an outcome for the recorder thread; its job stays held until stored."""
        self._outcomes.put(outcome)

    def forget(self, *job_ids: str) -> None:
        """These jobs are no longer held (their outcome is stored, or none will be)."""
        with self._held_lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)
        with self._changed:
            self._changed.notify_all()

    def held_by_queue(self) -> dict[str, list[str]]:
        """Ids of the held jobs by queue, for lease renewal."""
        with self._held_lock:
            held: dict[str, list[str]] = {}
            for job_id, queue_name in self._held.items():
                held.setdefault(queue_name, []).append(job_id)
        return held

    # -- waiting ---------------------------------------------------------------

    def wake_waiters(self) -> None:
        """Wake the `wait_*` calls so they check their stop condition again."""
        with self._changed:
            self._changed.notify_all()

    def wait_until_settled(self, stopping: threading.Event) -> None:
        """Until nothing is in flight or held (every outcome stored), or `stopping`."""
        with self._changed:
            while (self._in_flight or self._held) and not stopping.is_set():
                self._changed.wait(0.5)

    def wait_until_ended(self, deadline: float) -> None:
        """Until nothing is in flight, or the `time.monotonic()` deadline passes."""
        with self._changed:
            while self._in_flight > 0 and time.monotonic() < deadline:
                self._changed.wait(min(deadline - time.monotonic(), 0.5))

    # -- the recorder thread ---------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float) -> None:
        """Write what is queued, then end the thread (waiting at most `timeout_s`)."""
        self._outcomes.put(None)
        self._thread.join(timeout=timeout_s)

    def _record_loop(self) -> None:
        done = False
        while not done:
            batch = [self._outcomes.get()]
            # More than the one just recorded (it may not have ended yet).
            if batch[0] is not None and self._in_flight > 1:
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
            "recording outcomes", cap_s=self._retry_cap_s, reached=self._reached
        )
        while outcomes:
            try:
                codes = self._store.finish(outcomes, self._worker_id, self._clock())
            except RedisUnavailable as err:
                if self._halt.is_set():
                    _drop(outcomes, err)
                    return
                # Keep them (and their leases, see the heartbeat): these results
                # must reach Redis once it is back.
                backoff.wait(self._halt, err)
                continue
            backoff.reset()
            for outcome, code in zip(outcomes, codes, strict=True):
                if code != 1:
                    logger.warning(
                        "outcome not recorded, job no longer held by this worker "
                        "job id=%s queue=%s outcome=%s",
                        outcome.job_id,
                        outcome.queue,
                        outcome.status,
                    )
            self.forget(*(outcome.job_id for outcome in outcomes))
            return


def _drop(outcomes: list[Outcome], err: Exception) -> None:
    """At exit with Redis still away: the leases will run out and the jobs run
    again elsewhere."""
    for outcome in outcomes:
        logger.error(
            "outcome lost at stop, redis unavailable; the job will run again "
            "job id=%s queue=%s outcome=%s: %s",
            outcome.job_id,
            outcome.queue,
            outcome.status,
            err,
        )
