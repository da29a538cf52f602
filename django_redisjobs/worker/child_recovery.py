"""What Redis must learn when the supervisor loses a worker process.

A child that died by itself (crash, ``os._exit``, OOM kill) has its jobs taken
back at once with `JobStore.recover_worker`: the lost attempt counts, as when a
lease expires. A child the supervisor killed for a job past its timeout has that
attempt recorded as failed with `JobTimeout` (retried or dead per the function's
policy), and its other jobs put back in their queues without using an attempt.
Every write goes through `JobStore`, whose scripts check that the job is still
that worker's attempt, so nothing here can overwrite a later state.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from .. import signals
from ..conf import Settings
from ..exceptions import (
    InvalidJob,
    JobDoesNotExist,
    RedisUnavailable,
    UnknownBackgroundFunction,
)
from ..execution import (
    AttemptResult,
    error_record,
    send_signal,
    timeout_error,
)
from ..job import Job, JobStatus
from ..policy import after_failure, retry_policy
from ..queue import JobStore, Outcome
from ..registry import FunctionSpec, Registry

logger = logging.getLogger(__name__)

_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 5.0


@dataclass
class RunningJob:
    """A job with a timeout that a child reported as started."""

    job_id: str
    queue: str
    attempt: int
    timeout_ms: int
    started: float  # time.monotonic() in the supervisor when the report came
    kill_at: float  # time.monotonic(): the supervisor kills the child then


@dataclass
class LostChild:
    """A worker process that is gone, and how."""

    worker_id: str
    reason: str  # "Worker process X exited with code 1", for the job's record
    timed_out: list[RunningJob]
    crashed: bool  # it died by itself: its jobs' attempts count


class ChildRecovery:
    """Records lost children in Redis from a thread of its own.

    The supervisor's loop hands each lost child to `add()` and goes on: a slow or
    unreachable Redis never delays a kill or a restart. While Redis does not answer,
    the thread retries with a capped backoff; until it gets through, the jobs stay
    leased to the dead worker, so lease expiry remains the fallback.
    """

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        functions: Registry,
        queues: Sequence[str],
        clock: Callable[[], int],
    ) -> None:
        self.store = store
        self.settings = settings
        self.functions = functions
        self.queues = tuple(queues)
        self.clock = clock
        self._inbox: queue.SimpleQueue[LostChild | None] = queue.SimpleQueue()
        self._pending: list[LostChild] = []
        self._thread = threading.Thread(
            target=self._loop, name="redisjobs-recovery", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def add(self, lost: LostChild) -> None:
        self._inbox.put(lost)

    def close(self, timeout_s: float) -> None:
        """Make one last try for what is pending, waiting at most `timeout_s`."""
        self._inbox.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive() or self._pending:
            logger.warning(
                "stopping without recording every lost worker process in Redis; "
                "their jobs return to their queues when their leases expire"
            )

    def _loop(self) -> None:
        retry_in_s = 0.0
        closing = False
        while True:
            closing = self._collect(retry_in_s) or closing
            if closing:
                self._try_pending(None)
                return
            next_s = min(max(retry_in_s * 2, _BACKOFF_FIRST_S), _BACKOFF_MAX_S)
            retry_in_s = 0.0 if self._try_pending(next_s) else next_s

    def _collect(self, backoff_s: float) -> bool:
        """Wait for lost children, or `backoff_s` when some are pending; take all
        that arrived. True once `close()` was called."""
        try:
            item = self._inbox.get(timeout=backoff_s if self._pending else None)
        except queue.Empty:
            return False  # a retry is due
        closed = False
        while True:
            if item is None:
                closed = True
            else:
                self._pending.append(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return closed

    def _try_pending(self, retry_in_s: float | None) -> bool:
        """Record every pending child; True when all got through."""
        failed: list[LostChild] = []
        for lost in self._pending:
            try:
                self._record(lost)
            except RedisUnavailable as err:
                logger.warning(
                    "redis unavailable while recovering jobs of worker id=%s, %s: %s",
                    lost.worker_id,
                    "giving up"
                    if retry_in_s is None
                    else f"retry in {retry_in_s:.1f}s",
                    err,
                )
                failed.append(lost)
            except Exception:
                # A bug or a corrupt job must not end this thread and every later
                # recovery with it; lease expiry still takes these jobs back.
                logger.exception(
                    "could not record lost worker process id=%s", lost.worker_id
                )
        self._pending = failed
        return not failed

    def _record(self, lost: LostChild) -> None:
        while lost.timed_out:  # popped one by one: a retry skips recorded ones
            self._record_timeout(lost.worker_id, lost.timed_out[0])
            lost.timed_out.pop(0)
        for queue_name in self.queues:
            if lost.crashed:
                self._recover(queue_name, lost)
            else:
                self._requeue(queue_name, lost.worker_id)
        self.store.unregister_worker(lost.worker_id)

    def _recover(self, queue_name: str, lost: LostChild) -> None:
        recovered = self.store.recover_worker(
            queue_name, lost.worker_id, lost.reason, self.clock()
        )
        for job_id in recovered.job_ids:
            logger.warning(
                "recovered job from a dead worker process job id=%s queue=%s worker=%s",
                job_id,
                queue_name,
                lost.worker_id,
            )

    def _requeue(self, queue_name: str, worker_id: str) -> None:
        held = self.store.held_by(worker_id, queue_name)
        outcomes = [
            Outcome(job_id, queue_name, attempt, "requeued")
            for job_id, attempt in held.items()
        ]
        if not outcomes:
            return
        codes = self.store.finish(outcomes, worker_id, self.clock())
        for outcome, code in zip(outcomes, codes, strict=True):
            if code == 1:
                logger.warning(
                    "job requeued after its worker process was killed job id=%s "
                    "queue=%s worker=%s",
                    outcome.job_id,
                    queue_name,
                    worker_id,
                )

    def _record_timeout(self, worker_id: str, running: RunningJob) -> None:
        try:
            job = self.store.get(running.job_id, running.queue)
        except JobDoesNotExist:
            return
        except InvalidJob:
            logger.exception(
                "cannot record the timeout of a corrupt job id=%s queue=%s",
                running.job_id,
                running.queue,
            )
            return
        if (
            job.status is not JobStatus.ACTIVE
            or job.worker != worker_id
            or job.attempts != running.attempt
        ):
            return  # the child recorded the attempt before it died
        result = self._timed_out(job, running)
        now_ms = self.clock()
        (code,) = self.store.finish(
            [result.outcome(self.settings, now_ms)], worker_id, now_ms
        )
        if code == 1:
            # The child died before it could announce the attempt's end; sent
            # only once the outcome is written, so a retried write (Redis away)
            # or a job that moved on meanwhile sends nothing twice.
            send_signal(
                signals.job_finished,
                job,
                outcome=result.status,
                error=result.error,
                duration=result.duration,
            )
            _log_timeout(result)

    def _timed_out(self, job: Job, running: RunningJob) -> AttemptResult:
        """The attempt's end, as the function's retry policy decides it."""
        exc = timeout_error(job)
        policy = retry_policy(self._spec(job), job.max_attempts, self.settings)
        verdict = after_failure(exc, job.attempts, policy)
        return AttemptResult(
            job,
            verdict.status,
            error=error_record(exc),
            retry_in=verdict.retry_in,
            duration=timedelta(seconds=time.monotonic() - running.started),
        )

    def _spec(self, job: Job) -> FunctionSpec | None:
        """The function's spec, for its retry policy; None if it is unknown here
        (the policy then applies the settings' defaults)."""
        try:
            return self.functions.get(job.func)
        except UnknownBackgroundFunction:
            return None


def _log_timeout(result: AttemptResult) -> None:
    job = result.job
    message = result.error.message if result.error else ""
    level = logging.ERROR if result.status is JobStatus.DEAD else logging.WARNING
    logger.log(
        level,
        "job timed out, worker process killed id=%s func=%s queue=%s attempt=%d "
        "outcome=%s: %s",
        job.id,
        job.func,
        job.queue,
        job.attempts,
        result.status.value,
        message,
    )
